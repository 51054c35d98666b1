"""Cases: detections grouped per account and incident window, reviewed, reported."""
