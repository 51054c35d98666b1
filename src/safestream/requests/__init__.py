"""Law-enforcement requests: intake, deadlines, workflow, escalation, response packages."""
