"""The image and text towers and the similarity module (notebooks 03-06)."""
