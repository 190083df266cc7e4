"""Command-line tools that are not plug-ins: the data generators (`python -m tools.synthetic_gopro`,
`python -m tools.synthetic_flow`). Kept out of the plug-in folders, whose discovery imports every module."""
