"""The public API named in the README resolves: every lazily exported name imports."""
import lab_utils.models as models
import lab_utils.viz as viz


def test_every_lazy_model_name_resolves():
    for name in models.__all__:
        assert getattr(models, name) is not None, name


def test_every_lazy_plot_name_resolves():
    for name in viz._LAZY:
        assert callable(getattr(viz, name)), name


def test_models_hold_models_only():
    """Data plumbing and recipes have one home each: lab_utils.models does not hand them out."""
    import pytest

    import lab_utils.models.clip as clip
    import lab_utils.models.fer as fer

    for module, name in ((clip, "train_clip"), (clip, "TextEmbeddingCache"), (fer, "make_loaders"),
                         (fer, "fer_step"), (models, "load_clip_image_encoder")):
        with pytest.raises(AttributeError):
            getattr(module, name)


def test_unknown_name_is_an_attribute_error():
    import pytest
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        models.Nope


def _lab_imports():
    """``{module: modules of lab_utils it imports}``, counting imports inside functions too."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = {".".join(f.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): f
             for f in (root / "lab_utils").rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                targets = [f"{target}.{a.name}" for a in node.names] + [target]
                found.update(t for t in targets if t in files and t not in (name, "lab_utils"))
        graph[name] = found
    return graph


def test_lab_utils_has_no_import_cycles():
    """No module reaches itself through the modules it imports, even through an import
    placed inside a function (which would only hide a cycle)."""
    graph = _lab_imports()

    def reaches(start):
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
        return seen

    cycles = sorted(m for m in graph if m in reaches(m))
    assert not cycles, f"modules on an import cycle: {cycles}"
    assert graph["lab_utils.config_schemas"] <= {"lab_utils.models.clip_names"}     # leaves
    assert graph["lab_utils.models.clip_names"] <= {"lab_utils.paths"}


def test_lab_utils_never_imports_the_tools():
    """What a notebook imports installs without the instructors' tools: no module of
    lab_utils imports lab_tools or nbgrader (nor nbclient, the notebook runner's), even lazily."""
    import ast
    from pathlib import Path

    tools = {"lab_tools", "nbgrader", "nbclient"}
    found = []
    for path in (Path(__file__).resolve().parents[1] / "lab_utils").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in tools]
    assert not found, found
