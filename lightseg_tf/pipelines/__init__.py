"""Multi-stage pipelines: the LightSeg chain (``lightseg pipeline``) and the comparative study."""
