"""Law-enforcement reports: model, quality check, CyberTipline-style XML and JSON."""
