"""Fetal anatomy in pure numpy geometry: head ellipse and biometry, mask post-processing."""
