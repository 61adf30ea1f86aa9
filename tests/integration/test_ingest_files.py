"""Files a user lands with ``fti ingest --source S --file PATH``: every format reads as the raw contract's text."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality

from fti.ingest import BadFileError, read_text_file


def test_a_json_lines_file_reads_as_text_with_the_values_it_has(spark, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"user_id": "u1", "amount": 1.50, "ok": true, "tags": ["a", "b"]}\n'
                    '\n'
                    '{"user_id": "u2", "amount": 7}\n')
    got = read_text_file(spark, path)
    expected = spark.createDataFrame([("1.5", "true", '["a","b"]', "u1"), ("7", None, None, "u2")],
                                     "amount string, ok string, tags string, user_id string")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_column_order=True, ignore_nullable=True)


def test_a_json_lines_file_with_a_line_that_is_not_an_object_is_refused_whole(spark, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"user_id": "u1", "amount": 1.5}\n{"user_id": "u2", "amount": \n[1, 2]\n')
    with pytest.raises(BadFileError, match=r"events.jsonl: 2 line\(s\) are not JSON objects \(first: line 2\); "
                                           r"nothing was landed"):
        read_text_file(spark, path)
    with pytest.raises(BadFileError, match=r"neither \.csv, \.jsonl nor \.parquet"):
        (tmp_path / "events.xml").write_text("<a/>")
        read_text_file(spark, tmp_path / "events.xml")
