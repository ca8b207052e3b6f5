"""Package data: the calibration fitted on LFW."""
