import pytest

from src.data.lists import ListFormatError, parse_list, read_classes


def write(tmp_path, text, name="list.txt"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_frames_list_with_spaces_and_non_ascii(tmp_path):
    p = write(tmp_path, "vid 1 12 3\n\nsome dir/with spaces 40 0\nvidéo_ß 5 2\n")
    recs = parse_list(p, "frames", num_classes=4)
    assert [(r.path, r.num_frames, r.label) for r in recs] == [
        ("vid 1", 12, 3), ("some dir/with spaces", 40, 0), ("vidéo_ß", 5, 2)]


def test_video_list_and_multi_label(tmp_path):
    recs = parse_list(write(tmp_path, "a b.mp4 7\n"), "video", num_classes=8)
    assert recs[0].path == "a b.mp4" and recs[0].num_frames is None and recs[0].label == 7
    recs = parse_list(write(tmp_path, "x 10 1 4\n"), "frames", num_labels=2)
    assert recs[0].labels == (1, 4)


@pytest.mark.parametrize("line,why", [("only_a_path", "expected a path"), ("vid 12", "expected a path"),
                                      ("vid x 3", "must be integers"), ("vid 12 three", "must be integers"),
                                      ("vid 12 9", "label outside"), ("vid 12 -1", "label outside"),
                                      ("vid 0 1", "frame count 0")])
def test_malformed_lines_name_file_and_line(tmp_path, line, why):
    p = write(tmp_path, f"good 10 1\n{line}\n")
    with pytest.raises(ListFormatError) as e:
        parse_list(p, "frames", num_classes=5)
    assert f"{p}:2:" in str(e.value) and why in str(e.value)


def test_empty_list_and_missing_file(tmp_path):
    with pytest.raises(ListFormatError, match="empty"):
        parse_list(write(tmp_path, "\n\n"), "frames")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        parse_list(tmp_path / "nope.txt")


def test_classes_file_count_must_match(tmp_path):
    p = write(tmp_path, "a\nb\nc\n", "classes.txt")
    assert read_classes(p, 3) == ["a", "b", "c"]
    with pytest.raises(ListFormatError, match="num_classes=4"):
        read_classes(p, 4)
