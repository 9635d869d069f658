"""Purchase history in, predictions out: datasets, LightFM, need prediction, serving."""
