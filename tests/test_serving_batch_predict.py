"""kerascnn.serving.batch_predict: which files `predict` reads from the folders it is given."""

import os

import pytest

from kerascnn.errors import DataError
from kerascnn.serving.batch_predict import image_files


def test_folders_are_read_in_order_through_symlinks_and_a_link_loop_ends(tmp_path):
    # pics/cat/{a,b}.png, pics/dog -> ../elsewhere/dog (a linked class folder), and a loop back up.
    (tmp_path / "pics" / "cat").mkdir(parents=True)
    (tmp_path / "elsewhere" / "dog").mkdir(parents=True)
    for path in ("pics/cat/b.png", "pics/cat/a.PNG", "pics/cat/notes.txt", "pics/cat/.hidden.png",
                 "elsewhere/dog/c.jpg"):
        (tmp_path / path).write_bytes(b"")
    os.symlink(tmp_path / "elsewhere" / "dog", tmp_path / "pics" / "dog")
    os.symlink(tmp_path / "pics", tmp_path / "pics" / "cat" / "up")

    files = image_files([tmp_path / "pics"])
    assert [os.path.relpath(f, tmp_path) for f in files] == ["pics/cat/a.PNG", "pics/cat/b.png", "pics/dog/c.jpg"]
    # A file named beside its folder is listed each time it is named.
    assert len(image_files([tmp_path / "pics", tmp_path / "pics" / "cat" / "b.png"])) == 4


def test_a_missing_path_or_a_folder_without_images_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        image_files([tmp_path / "nothing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        image_files([tmp_path / "empty"])
