"""Data for the lab: the synthetic face world (quick profile) and real-format loaders (full).

Synthetic (``synthetic.py``, ``captions.py``): :data:`EMOTIONS`, :class:`SynthFER` (paired
RGB + thermal), :class:`SynthFaceCaptions`, the generator (:func:`generate_faces`) and its
design tables. Splits (``splits.py``): :func:`subject_split`, leakage checks. Transforms
(``transforms.py``): :func:`get_transforms`, :func:`get_paired_transforms`, the paired flip.
Loaders (``loaders.py``): :func:`load_fer2013`, :func:`load_paired_rgbt`, :func:`load_captions`.
Per notebook: ``clip_data.py`` (02), ``hybrid_data.py`` (03), ``fer_data.py`` (04-05).
See ``data/README.md`` for formats and where to put real data.
"""
from .synthetic import (EMOTIONS, HAIR_COLORS, ITEMS_PER_SUBJECT, MAX_RENDER_SIZE, NUM_CLASSES,  # noqa: F401
                        RGB_ACTIONS, render_size, SKIN_TONES, THERMAL_CUES, THERMAL_RANGE_C, SynthFER,
                        celsius_to_unit, generate_faces, render_batch, sample_attributes,
                        thermal_to_celsius)
from .captions import EXPRESSION_WORDS, SynthFaceCaptions, make_captions, position_words  # noqa: F401
from .splits import (LabeledSubset, assert_no_subject_leakage, check_subject_leakage,  # noqa: F401
                     get_labels, get_subjects, people_of, subject_split)
from .transforms import (CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, NORMALIZATION,  # noqa: F401
                         PairedRandomHorizontalFlip, PairedTransform, ToThreeChannels,
                         get_paired_transforms, get_transforms, paired_hflip_batch)
from .loaders import (FER2013, CaptionDataset, PairedRGBT, class_index, fer2013_test_split,  # noqa: F401
                      load_captions, load_fer2013, load_paired_rgbt, parse_subject)

__all__ = [
    "EMOTIONS", "NUM_CLASSES", "ITEMS_PER_SUBJECT", "RGB_ACTIONS", "THERMAL_CUES", "THERMAL_RANGE_C",
    "SKIN_TONES", "HAIR_COLORS", "SynthFER", "SynthFaceCaptions", "generate_faces", "render_batch",
    "sample_attributes", "celsius_to_unit", "thermal_to_celsius", "EXPRESSION_WORDS", "make_captions",
    "position_words", "LabeledSubset", "subject_split", "check_subject_leakage", "assert_no_subject_leakage",
    "get_labels", "get_subjects", "people_of", "IMAGENET_MEAN", "IMAGENET_STD", "CLIP_MEAN", "CLIP_STD", "NORMALIZATION",
    "ToThreeChannels", "PairedRandomHorizontalFlip", "PairedTransform", "paired_hflip_batch",
    "get_transforms", "get_paired_transforms", "FER2013", "PairedRGBT", "CaptionDataset", "class_index",
    "parse_subject", "load_fer2013", "load_paired_rgbt", "load_captions", "MAX_RENDER_SIZE", "render_size",
    "fer2013_test_split",
]
