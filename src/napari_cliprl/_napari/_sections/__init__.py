"""Sections of the CLIP-RL annotator dock widget, one small Qt class each."""
