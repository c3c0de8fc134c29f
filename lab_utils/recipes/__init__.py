"""Training recipes: how the lab's models are trained, evaluated and saved, one module per
notebook that needs more than a few lines: ``clip.py`` (notebook 02: the two CLIP recipes,
zero-shot, the image encoders' checkpoints), ``hybrid.py`` (notebook 03: the hybrid's training
step), ``fer.py`` (notebooks 04-05: fine-tuning
strategies, steps, cached features, memory measurements).

The models themselves live in ``lab_utils.models``, the data in ``lab_utils.data``, the
training loop in ``lab_utils.training``.
"""
