"""What an export may be asked for, as plain Python (no torch): the layouts `mae convert --to` writes."""

EXPORT_LAYOUTS = ("mae", "official", "hf", "timm", "mmpretrain", "mmseg")  # written by export.py
