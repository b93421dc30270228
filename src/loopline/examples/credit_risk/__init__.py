"""Credit risk: will a loan applicant default? A complete example pipeline."""
