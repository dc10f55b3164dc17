import pytest

from backends import ModelLoadError
from console.paths import ModelRoots


@pytest.fixture
def root(tmp_path):
    models = tmp_path / "models"
    (models / "good").mkdir(parents=True)
    (models / "good" / "config.json").write_text("{}")
    (models / "empty").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    (models / "escape").symlink_to(outside)
    return models


def test_paths_under_a_root_resolve(root):
    roots = ModelRoots([root])
    assert roots.resolve("good") == root / "good"
    assert roots.resolve(str(root / "good")) == root / "good"


@pytest.mark.parametrize("path", ["../outside", "escape", "/etc"])
def test_paths_leaving_the_roots_are_refused(root, path):
    with pytest.raises(ValueError, match="outside the allowed model roots"):
        ModelRoots([root]).resolve(path)


def test_missing_and_non_model_folders_say_so(root):
    with pytest.raises(ModelLoadError, match="does not exist"):
        ModelRoots([root]).resolve("absent")
    with pytest.raises(ModelLoadError, match="no config.json"):
        ModelRoots([root]).resolve("empty")


def test_without_roots_any_local_model_folder_is_allowed(root):
    assert ModelRoots().resolve(str(root / "escape")) == (root.parent / "outside")


def test_new_folders_for_quantized_models_stay_inside_the_roots(root, tmp_path):
    roots = ModelRoots([root])
    assert roots.new_folder("smol-awq", tmp_path / "unused") == root / "smol-awq"
    for escape in ("../elsewhere", "escape/awq", "/tmp/awq"):
        with pytest.raises(ValueError, match="outside the allowed model roots"):
            roots.new_folder(escape, tmp_path)
    assert ModelRoots().new_folder("awq", tmp_path) == tmp_path / "awq"
