"""Just enough H.264 header parsing to know which pictures a P-picture needs.

A mid-GOP sample needs every picture its due frame predicts from, and those pictures'
predecessors, back to the GOP's IDR. With B-frame pyramids (x264's default) half of the
reference pictures before a due frame are B-pictures; P-pictures usually predict from
I- and P-pictures only. Decoding only the I/P chain is then bit-exact and does about half
the work, but only when no decoded picture actually references a skipped one, which this
module tells from the headers:

* :func:`parse_sps` / :func:`parse_pps`: the fields the slice header depends on;
* :func:`parse_slice_header`: slice type, ``frame_num``, active reference count, the
  reference list modifications and the reference marking (MMCO) of one slice;
* :class:`RefTracker`: the decoded picture buffer's short-term references as the
  standard's marking process keeps them (sliding window, MMCO 1), each flagged decoded
  or skipped, and the active list-0 entries of a P-slice (default order by descending
  ``PicNum`` + modifications, ITU-T H.264 8.2.4).

Anything outside that model (fields, long-term references, MMCO 2-6, slice groups,
frame_num gaps in the stream itself, unparsable headers) raises :class:`Unsupported`;
the caller then decodes every reference picture, as before. Nothing here decodes pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: ``slice_type % 5``: P, B, I, SP, SI.
SLICE_P, SLICE_B, SLICE_I, SLICE_SP, SLICE_SI = range(5)
#: Bytes of a slice NAL unit read for its header (pred-weight tables of many references
#: and long MMCO lists are the long parts; more than this raises :class:`Unsupported`).
HEADER_BYTES = 512


class Unsupported(Exception):
    """The stream uses something the reference model does not cover (or is malformed)."""


class _Truncated(Unsupported):
    """The header runs past the bytes read."""


#: Bytes read first for a slice header (most fit; a longer one is read again, whole).
SHORT_HEADER_BYTES = 48


def unescape(data: bytes) -> bytes:
    """RBSP bytes: the NAL unit payload without emulation prevention bytes (00 00 03)."""
    if b"\0\0\3" not in data:
        return data
    out = bytearray()
    i = 0
    while True:
        j = data.find(b"\0\0\3", i)
        if j < 0:
            out += data[i:]
            return bytes(out)
        out += data[i : j + 2]
        i = j + 3


class BitReader:
    """MSB-first bit reader over RBSP bytes with Exp-Golomb codes."""

    __slots__ = ("_bits", "_pos", "_value")

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._bits = len(data) * 8
        self._pos = 0

    def u(self, n: int) -> int:
        """``n`` bits as an unsigned integer."""
        if n == 0:
            return 0
        end = self._pos + n
        if end > self._bits:
            raise _Truncated("header runs past the bytes read")
        self._pos = end
        return (self._value >> (self._bits - end)) & ((1 << n) - 1)

    def flag(self) -> bool:
        """One bit."""
        return self.u(1) == 1

    def ue(self) -> int:
        """Unsigned Exp-Golomb."""
        left = self._bits - self._pos
        rest = self._value & ((1 << left) - 1)
        zeros = left - rest.bit_length()
        if zeros > 31 or rest == 0:
            raise Unsupported("bad Exp-Golomb code")
        self._pos += zeros
        return self.u(zeros + 1) - 1

    def se(self) -> int:
        """Signed Exp-Golomb."""
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


@dataclass(frozen=True)
class Sps:
    """The sequence parameter set fields slice headers depend on."""

    sps_id: int
    chroma_array_type: int
    separate_colour_planes: bool
    log2_max_frame_num: int
    poc_type: int
    log2_max_poc_lsb: int
    delta_pic_order_always_zero: bool
    max_num_ref_frames: int
    frame_mbs_only: bool


@dataclass(frozen=True)
class Pps:
    """The picture parameter set fields slice headers depend on."""

    pps_id: int
    sps_id: int
    bottom_field_pic_order_in_frame_present: bool
    num_ref_idx_l0_default: int
    num_ref_idx_l1_default: int
    weighted_pred: bool
    weighted_bipred_idc: int
    redundant_pic_cnt_present: bool


def _bounded(value: int, most: int, name: str) -> int:
    """A syntax element the standard bounds (a hostile stream must not size anything)."""
    if value > most:
        raise Unsupported(f"{name} {value} is over {most}")
    return value


def _skip_scaling_list(r: BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + r.se() + 256) % 256
        last = nxt or last


def parse_sps(nal: bytes) -> Sps:
    """An SPS NAL unit (header byte included)."""
    r = BitReader(unescape(nal[1:HEADER_BYTES]))
    profile = r.u(8)
    r.u(16)  # constraint flags, level
    sps_id = _bounded(r.ue(), 31, "seq_parameter_set_id")
    chroma_format = 1
    separate_planes = False
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma_format = _bounded(r.ue(), 3, "chroma_format_idc")
        if chroma_format == 3:
            separate_planes = r.flag()
        r.ue()  # bit depth luma
        r.ue()  # bit depth chroma
        r.u(1)  # qpprime_y_zero_transform_bypass
        if r.flag():  # seq_scaling_matrix_present
            for i in range(8 if chroma_format != 3 else 12):
                if r.flag():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    log2_max_frame_num = _bounded(r.ue(), 12, "log2_max_frame_num_minus4") + 4
    poc_type = _bounded(r.ue(), 2, "pic_order_cnt_type")
    log2_max_poc_lsb = 0
    always_zero = False
    if poc_type == 0:
        log2_max_poc_lsb = _bounded(r.ue(), 12, "log2_max_pic_order_cnt_lsb_minus4") + 4
    elif poc_type == 1:
        always_zero = r.flag()
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    max_refs = _bounded(r.ue(), 16, "max_num_ref_frames")
    r.u(1)  # gaps_in_frame_num_value_allowed
    r.ue()
    r.ue()  # picture size in macroblocks
    frame_mbs_only = r.flag()
    return Sps(
        sps_id=sps_id,
        chroma_array_type=0 if separate_planes else chroma_format,
        separate_colour_planes=separate_planes,
        log2_max_frame_num=log2_max_frame_num,
        poc_type=poc_type,
        log2_max_poc_lsb=log2_max_poc_lsb,
        delta_pic_order_always_zero=always_zero,
        max_num_ref_frames=max_refs,
        frame_mbs_only=frame_mbs_only,
    )


def parse_pps(nal: bytes) -> Pps:
    """A PPS NAL unit (header byte included)."""
    r = BitReader(unescape(nal[1:HEADER_BYTES]))
    pps_id = _bounded(r.ue(), 255, "pic_parameter_set_id")
    sps_id = _bounded(r.ue(), 31, "seq_parameter_set_id")
    r.u(1)  # entropy_coding_mode
    bottom_present = r.flag()
    if r.ue():
        raise Unsupported("slice groups (FMO)")
    l0 = _bounded(r.ue(), 31, "num_ref_idx_l0_default_active_minus1") + 1
    l1 = _bounded(r.ue(), 31, "num_ref_idx_l1_default_active_minus1") + 1
    weighted = r.flag()
    bipred = r.u(2)
    r.se()
    r.se()
    r.se()  # pic_init_qp, pic_init_qs, chroma_qp_index_offset
    r.u(1)  # deblocking_filter_control_present
    r.u(1)  # constrained_intra_pred
    redundant = r.flag()
    return Pps(pps_id, sps_id, bottom_present, l0, l1, weighted, bipred, redundant)


@dataclass(frozen=True)
class SliceHeader:
    """What one slice says about references."""

    nal_type: int
    nal_ref_idc: int
    slice_type: int
    frame_num: int
    num_ref_idx_l0: int
    #: List-0 modifications: (modification_of_pic_nums_idc, value), idc 0 or 1 only.
    modifications_l0: tuple[tuple[int, int], ...]
    #: Adaptive marking operations (MMCO 1 only: difference_of_pic_nums_minus1); None
    #: when the sliding window applies (or the picture is not a reference).
    mmco: tuple[int, ...] | None
    sps: Sps

    @property
    def idr(self) -> bool:
        """An instantaneous decoder refresh."""
        return self.nal_type == 5


def _pred_weight_table(r: BitReader, sps: Sps, l0: int, l1: int, slice_type: int) -> None:
    r.ue()
    if sps.chroma_array_type:
        r.ue()
    for count in (l0, l1) if slice_type == SLICE_B else (l0,):
        for _ in range(count):
            if r.flag():
                r.se()
                r.se()
            if sps.chroma_array_type and r.flag():
                for _ in range(4):
                    r.se()


def _modifications(r: BitReader) -> tuple[tuple[int, int], ...]:
    if not r.flag():
        return ()
    out: list[tuple[int, int]] = []
    while True:
        idc = r.ue()
        if idc == 3:
            return tuple(out)
        if idc > 3 or len(out) > 32:
            raise Unsupported(f"reference list modification {idc}")
        value = r.ue()
        if idc == 2:
            raise Unsupported("long-term reference in a list modification")
        out.append((idc, value))


def parse_slice_header(
    nal: bytes, sps_by_id: dict[int, Sps], pps_by_id: dict[int, Pps]
) -> SliceHeader:
    """A slice NAL unit's header (types 1 and 5, header byte included)."""
    try:
        return _slice_header(nal, SHORT_HEADER_BYTES, sps_by_id, pps_by_id)
    except _Truncated:
        return _slice_header(nal, HEADER_BYTES, sps_by_id, pps_by_id)


def _slice_header(
    nal: bytes, size: int, sps_by_id: dict[int, Sps], pps_by_id: dict[int, Pps]
) -> SliceHeader:
    nal_type, ref_idc = nal[0] & 0x1F, (nal[0] >> 5) & 3
    r = BitReader(unescape(nal[1 : size + 1]))
    r.ue()  # first_mb_in_slice
    slice_type = r.ue() % 5
    pps = pps_by_id.get(r.ue())
    if pps is None:
        raise Unsupported("slice before its PPS")
    sps = sps_by_id.get(pps.sps_id)
    if sps is None:
        raise Unsupported("PPS before its SPS")
    if sps.separate_colour_planes:
        r.u(2)  # colour_plane_id
    frame_num = r.u(sps.log2_max_frame_num)
    if not sps.frame_mbs_only and r.flag():
        raise Unsupported("field pictures")
    if nal_type == 5:
        r.ue()  # idr_pic_id
    if sps.poc_type == 0:
        r.u(sps.log2_max_poc_lsb)
        if pps.bottom_field_pic_order_in_frame_present:
            r.se()
    elif sps.poc_type == 1 and not sps.delta_pic_order_always_zero:
        r.se()
        if pps.bottom_field_pic_order_in_frame_present:
            r.se()
    if pps.redundant_pic_cnt_present:
        r.ue()
    if slice_type == SLICE_B:
        r.u(1)  # direct_spatial_mv_pred
    l0, l1 = pps.num_ref_idx_l0_default, pps.num_ref_idx_l1_default
    mods: tuple[tuple[int, int], ...] = ()
    if slice_type in (SLICE_P, SLICE_SP, SLICE_B):
        if r.flag():
            l0 = _bounded(r.ue(), 31, "num_ref_idx_l0_active_minus1") + 1
            if slice_type == SLICE_B:
                l1 = _bounded(r.ue(), 31, "num_ref_idx_l1_active_minus1") + 1
        mods = _modifications(r)
        if slice_type == SLICE_B:
            _modifications(r)
    if (pps.weighted_pred and slice_type in (SLICE_P, SLICE_SP)) or (
        pps.weighted_bipred_idc == 1 and slice_type == SLICE_B
    ):
        _pred_weight_table(r, sps, l0, l1, slice_type)
    mmco: tuple[int, ...] | None = None
    if ref_idc:
        if nal_type == 5:
            r.u(1)  # no_output_of_prior_pics
            if r.flag():
                raise Unsupported("long-term reference at an IDR")
        elif r.flag():
            ops: list[int] = []
            while True:
                op = r.ue()
                if op == 0:
                    break
                if op != 1 or len(ops) > 32:
                    raise Unsupported(f"memory management operation {op}")
                ops.append(r.ue())
            mmco = tuple(ops)
    return SliceHeader(nal_type, ref_idc, slice_type, frame_num, l0, mods, mmco, sps)


class RefTracker:
    """The short-term reference pictures of a decoded picture buffer, decoded or skipped.

    Two are kept per stream: one as the stream itself marks references (every picture's
    own marking, skipped or not) and one as the decoder marks them. A skipped reference
    picture never reaches the decoder: FFmpeg fills the ``frame_num`` gap it leaves with
    a copy of the previous reference under the sliding window (``gap=True``), and the
    skipped picture's own memory management operations never run. A P-slice decodes
    exactly as with nothing skipped when both give it the same active list-0 pictures
    and all of them were decoded (:meth:`list0`).
    """

    def __init__(self) -> None:
        #: frame_num -> decoded, oldest first.
        self.short: dict[int, bool] = {}
        self.prev_ref_frame_num: int | None = None

    def reset(self) -> None:
        """Forget everything (a decoder reset)."""
        self.short.clear()
        self.prev_ref_frame_num = None

    @staticmethod
    def _pic_num(frame_num: int, current: int, max_frame_num: int) -> int:
        return frame_num - max_frame_num if frame_num > current else frame_num

    def check_frame_num(self, h: SliceHeader) -> None:
        """Raise :class:`Unsupported` on a frame_num gap in the stream itself."""
        if h.idr or self.prev_ref_frame_num is None:
            return
        expected = (self.prev_ref_frame_num + 1) % (1 << h.sps.log2_max_frame_num)
        if h.frame_num != expected:
            raise Unsupported(f"frame_num gap ({self.prev_ref_frame_num} -> {h.frame_num})")

    def list0(self, h: SliceHeader) -> list[int]:
        """The frame_nums of a P-slice's active list-0 references (H.264 8.2.4)."""
        max_fn = 1 << h.sps.log2_max_frame_num
        cur = h.frame_num
        by_pic_num = {self._pic_num(fn, cur, max_fn): fn for fn in self.short}
        order = [by_pic_num[n] for n in sorted(by_pic_num, reverse=True)]
        pred = cur
        for index, (idc, value) in enumerate(h.modifications_l0):
            pred = (pred - (value + 1) if idc == 0 else pred + (value + 1)) % max_fn
            target = by_pic_num.get(pred - max_fn if pred > cur else pred)
            if target is None:
                raise Unsupported("a list modification names a picture not in the buffer")
            order = [*order[:index], target, *[fn for fn in order[index:] if fn != target]]
        return order[: h.num_ref_idx_l0]

    def add(self, h: SliceHeader, decoded: bool, *, gap: bool = False) -> None:
        """Mark a picture (its first slice's header) once it is decoded or skipped.

        ``gap``: marked as the decoder marks a picture it never got (sliding window).
        """
        if not h.nal_ref_idc:
            return
        max_fn = 1 << h.sps.log2_max_frame_num
        limit = max(h.sps.max_num_ref_frames, 1)
        if h.idr:
            self.short.clear()
        elif h.mmco is not None and not gap:
            for diff in h.mmco:
                self.short.pop((h.frame_num - (diff + 1)) % max_fn, None)
        elif len(self.short) >= limit:
            del self.short[self._oldest(h.frame_num, max_fn)]
        self.short.pop(h.frame_num, None)
        self.short[h.frame_num] = decoded
        while len(self.short) > limit:  # what FFmpeg does with too many references
            del self.short[self._oldest(h.frame_num, max_fn)]
        self.prev_ref_frame_num = h.frame_num

    def _oldest(self, current: int, max_fn: int) -> int:
        return min(self.short, key=lambda fn: self._pic_num(fn, current, max_fn))


class ParameterSets:
    """The SPS and PPS seen so far (from the extradata and in-band), by id."""

    def __init__(self) -> None:
        self.sps: dict[int, Sps] = {}
        self.pps: dict[int, Pps] = {}

    def seed(self, extradata: bytes | None, nal_starts: Iterable[int]) -> None:
        """Read parameter sets from ``avcC`` extradata, or Annex B NAL units at the offsets."""
        if not extradata:
            return
        if extradata[0] == 1 and len(extradata) > 6:
            i, units = 6, []
            for count_at_end in (False, True):
                if count_at_end:
                    if i >= len(extradata):
                        break
                    count, i = extradata[i], i + 1
                else:
                    count = extradata[5] & 0x1F
                for _ in range(count):
                    n = int.from_bytes(extradata[i : i + 2], "big")
                    units.append(extradata[i + 2 : i + 2 + n])
                    i += 2 + n
            for unit in units:
                self.read(unit)
            return
        for i in nal_starts:
            self.read(extradata[i:])

    def read(self, nal: bytes) -> None:
        """Keep the NAL unit if it is an SPS or PPS (unparsable ones raise Unsupported)."""
        if not nal:
            return
        kind = nal[0] & 0x1F
        if kind == 7:
            sps = parse_sps(nal)
            self.sps[sps.sps_id] = sps
        elif kind == 8:
            pps = parse_pps(nal)
            self.pps[pps.pps_id] = pps

    def picture(self, data: bytes, nal_starts: Iterable[int]) -> list[SliceHeader]:
        """The slice headers of one access unit (parameter sets in it are kept first)."""
        out = []
        for i in nal_starts:
            kind = data[i] & 0x1F
            if kind in (7, 8):
                self.read(data[i:])
            elif kind in (1, 5):
                out.append(parse_slice_header(data[i:], self.sps, self.pps))
            elif kind in (2, 3, 4, 20, 21):
                raise Unsupported(f"NAL unit type {kind} (data partitioning, SVC/MVC)")
        if not out:
            raise Unsupported("no slice in the packet")
        return out
