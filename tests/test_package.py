"""The public API named in the README resolves: every lazily exported name imports."""
import lab_utils.models as models
import lab_utils.viz as viz


def test_every_lazy_model_name_resolves():
    for name in models.__all__:
        assert getattr(models, name) is not None, name


def test_every_lazy_plot_name_resolves():
    for name in viz._LAZY:
        assert callable(getattr(viz, name)), name


def test_unknown_name_is_an_attribute_error():
    import pytest
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        models.Nope
