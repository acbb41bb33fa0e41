"""Malformed OBD and RecBole files: each raises one SchemaError naming the file, column, row and fix.

Each row's message is the whole error text after the file's path.

Every bad file is written here whole; no raw KeyError or pyarrow.lib.ArrowInvalid gets out.
"""

from __future__ import annotations

import re

import pytest

from recsys.data import SchemaError
from recsys.data.obd import load_obd
from recsys.data.recbole import load_recbole

CONTEXT = ("item_id,item_feature_0,item_feature_1,item_feature_2,item_feature_3\n"
           "0,0.5,a,b,c\n1,-0.5,a,d,c\n")
HEADER = "timestamp,item_id,position,click,propensity_score,user_feature_0,user_feature_1,user_feature_2," \
         "user_feature_3,user-item_affinity_0,user-item_affinity_1"
ROW0 = "2019-11-24 00:00:34+00:00,0,1,0,0.5,u0,u1,u2,u3,0.0,0.0"
ROW1 = "2019-11-24 00:00:35+00:00,1,2,1,0.5,u0,u1,u2,u3,0.0,1.0"
LAYOUT = "OBD files are comma-separated with a header row (see the dataset's README.md)"


def write_obd(root, log: str, context: str = CONTEXT):
    folder = root / "random" / "all"
    folder.mkdir(parents=True)
    (folder / "all.csv").write_text(log)
    (folder / "item_context.csv").write_text(context)
    return folder


def test_a_well_formed_obd_file_loads(tmp_path):
    write_obd(tmp_path, f"{HEADER}\n{ROW0}\n{ROW1}\n")
    log = load_obd(tmp_path)
    assert log.impressions["position"].tolist() == [0, 1] and log.affinity.shape == (2, 2)


@pytest.mark.parametrize(("log", "context", "file", "message"), [
    (f"{HEADER.replace(',click', '')}\n{ROW0.replace(',1,0,', ',1,')}\n", CONTEXT, "all.csv",
     f": missing column 'click'; {LAYOUT}"),
    (f"{HEADER.replace('propensity_score', 'propensity')}\n{ROW0}\n", CONTEXT, "all.csv",
     f": missing column 'propensity_score' (is 'propensity' a misspelling?); {LAYOUT}"),
    (f"{HEADER.replace(',user-item_affinity_1', '')}\n{ROW0[:-4]}\n", CONTEXT, "all.csv",
     f": missing column 'user-item_affinity_1'; {LAYOUT}"),
    (f"{HEADER.replace(',', ';')}\n{ROW0.replace(',', ';')}\n", CONTEXT, "all.csv",
     f": missing column 'timestamp' (the header is one field with ';' in it: is the file ';'-separated?); {LAYOUT}"),
    (f"{HEADER}\n{ROW0}\n{ROW1.replace(',1,2,', ',x,2,')}\n", CONTEXT, "all.csv",
     ": column 'item_id' row 1: 'x' is not an integer (int64); ids must be whole numbers such as 42"),
    (f"{HEADER}\n{ROW0}\n{ROW1.replace(',1,2,', ',1,left,')}\n", CONTEXT, "all.csv",
     ": column 'position' row 1: 'left' is not an integer (int32); write a whole number such as 2"),
    (f"{HEADER}\n{ROW0.replace(',0.5,', ',p,')}\n", CONTEXT, "all.csv",
     ": column 'propensity_score' row 0: 'p' is not a number (float64); write a plain number such as 0.25"),
    (f"{HEADER}\n{ROW0}\n{ROW1[:-4]},one\n", CONTEXT, "all.csv",
     ": column 'user-item_affinity_1' row 1: 'one' is not a number (float64); write a plain number such as 0.25"),
    (f"{HEADER}\n{ROW0.replace('2019-11-24 00:00:34+00:00', 'noon')}\n", CONTEXT, "all.csv",
     ": column 'timestamp' row 0: 'noon' is not a timestamp with a zone offset; "
     "write ISO-8601 with a zone offset such as 2024-05-01T12:00:00Z"),
    (f"{HEADER}\n{ROW0}\n{ROW1}\n1,2,3\n", CONTEXT, "all.csv", f" row 2: 3 fields where the header has 11; {LAYOUT}"),
    ("", CONTEXT, "all.csv", f": not a readable CSV file (Empty CSV file); {LAYOUT}"),
    (f"{HEADER}\n", CONTEXT, "all.csv", ": has a header but no rows; an OBD file needs at least one data row"),
    (f"{HEADER}\n{ROW0}\n", CONTEXT.replace("item_feature_0", "feature_0"), "item_context.csv",
     f": missing column 'item_feature_0' (is 'feature_0' a misspelling?); {LAYOUT}"),
    (f"{HEADER}\n{ROW0}\n", CONTEXT.replace("-0.5", "big"), "item_context.csv",
     ": column 'item_feature_0' row 1: 'big' is not a number (float64); write a plain number such as 0.25"),
    (f"{HEADER}\n{ROW0}\n", CONTEXT.replace(",", "\t"), "item_context.csv",
     f": missing column 'item_id' (the header is one field with '\\t' in it: is the file '\\t'-separated?); {LAYOUT}"),
])
def test_bad_obd_files_name_file_column_row_and_fix(tmp_path, log, context, file, message):
    folder = write_obd(tmp_path, log, context)
    with pytest.raises(SchemaError, match=f"^{re.escape(f'{folder / file}{message}')}$"):
        load_obd(tmp_path)


INTER = "user_id:token\titem_id:token\trating:float\n"


@pytest.mark.parametrize(("inter", "item", "file", "message"), [
    ("user_id:token,item_id:token\nu1,i1\n", None, "toy.inter",
     ": the header 'user_id:token,item_id:token' is one field: the file is not tab-separated; "
     "RecBole atomic files are UTF-8, tab-separated, one value per header field"),
    (f"{INTER}u1\ti1\t4\nu2\ti1\t5\tx\n", None, "toy.inter",
     " row 1: 4 tab-separated fields where the header has 3; "
     "RecBole atomic files are UTF-8, tab-separated, one value per header field"),
    (f"{INTER}u1\ti1\t4\nu2\ti1\n", None, "toy.inter",
     " row 1: 2 tab-separated fields where the header has 3; "
     "RecBole atomic files are UTF-8, tab-separated, one value per header field"),
    ("user_id:token\titem_id:token\titem_id:token\nu1\ti1\ti2\n", None, "toy.inter",
     ": header field 'item_id' appears twice; keep one field of each name"),
    ("user_id:token\titem_id:token\ttimestamp:token\nu1\ti1\t5\nu1\ti2\tyesterday\n", None, "toy.inter",
     ": column 'timestamp' row 1: 'yesterday' is not a number (float64); write a plain number such as 0.25"),
    ("user_id:token\titem_id:token\trating:token\nu1\ti1\tfive\n", None, "toy.inter",
     ": column 'rating' row 0: 'five' is not a number (float64); write a plain number such as 0.25"),
    (f"{INTER}u1\ti1\t4\n", "item_id:token\ttitle:token\ni1\tMug\tBlue\n", "toy.item",
     " row 0: 3 tab-separated fields where the header has 2; "
     "RecBole atomic files are UTF-8, tab-separated, one value per header field"),
])
def test_bad_recbole_files_name_file_field_row_and_fix(tmp_path, inter, item, file, message):
    (tmp_path / "toy.inter").write_text(inter)
    if item is not None:
        (tmp_path / "toy.item").write_text(item)
    with pytest.raises(SchemaError, match=f"^{re.escape(f'{tmp_path / file}{message}')}$"):
        load_recbole(tmp_path / "toy")


def test_a_recbole_file_that_is_not_utf8_says_how_to_reencode(tmp_path):
    (tmp_path / "toy.inter").write_bytes(b"user_id:token\titem_id:token\nu\xe9\ti1\n")
    with pytest.raises(SchemaError, match=re.escape(f"{tmp_path / 'toy.inter'}: not UTF-8 text (invalid continuation "
                                                    "byte at byte 29); re-encode it, e.g. iconv -f latin1 -t utf-8")):
        load_recbole(tmp_path / "toy")
