"""Bundled demo: the BasicMotions sensor dataset (`basicmotions.npz`) and its small 1-D CNN."""
