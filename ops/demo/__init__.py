"""Tools of the synthetic demo only (scripts/demo.py): backbone pretraining on the glyphs, where the policies look
(glyph coverage, oracle patches) and the demo's figures."""
