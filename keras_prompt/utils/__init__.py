"""Filesystem helpers shared by training, prompt files and exporters."""
