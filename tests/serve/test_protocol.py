"""V2 request parsing and response encoding, without HTTP."""

import json

import numpy as np
import pytest

from capsdeploy.serve.protocol import (
    InferRequest,
    InputSpec,
    OutputRequest,
    ProtocolError,
    encode_infer_response,
    parse_infer_request,
)

IMAGE = InputSpec("image", "float32", (1, 4, 4))
OUTS = ["scores", "poses"]


def parse(doc=None, blobs=b"", header=None, inputs=(IMAGE,), max_rows=8, raw=None):
    body = raw if raw is not None else json.dumps(doc).encode()
    if blobs and header is None:
        header = str(len(body))
    return parse_infer_request(body + blobs, header, list(inputs), OUTS, max_rows)


def tensor(x, name="image", **extra):
    return {"name": name, "datatype": "FP32", "shape": list(x.shape), "data": x.tolist(), **extra}


def test_json_nested_and_flat_give_the_same_array():
    x = np.arange(32, dtype=np.float32).reshape(2, 1, 4, 4) / 32
    nested = parse({"inputs": [tensor(x)]})
    flat = parse({"inputs": [{**tensor(x), "data": x.reshape(-1).tolist()}]})
    assert nested.rows == 2
    np.testing.assert_array_equal(nested.inputs["image"], x)
    np.testing.assert_array_equal(flat.inputs["image"], x)


def test_binary_input_and_parameters():
    x = np.random.default_rng(0).random((3, 1, 4, 4), dtype=np.float32)
    doc = {
        "id": "r1",
        "parameters": {"binary_data_output": True, "timeout": 5000},
        "inputs": [
            {
                "name": "image",
                "datatype": "FP32",
                "shape": [3, 1, 4, 4],
                "parameters": {"binary_data_size": x.nbytes},
            }
        ],
        "outputs": [{"name": "scores", "parameters": {"binary_data": False}}],
    }
    req = parse(doc, x.tobytes())
    np.testing.assert_array_equal(req.inputs["image"], x)
    assert (req.id, req.binary_output, req.timeout_us) == ("r1", True, 5000)
    assert req.outputs == [OutputRequest("scores", False)]


def test_raw_body_with_header_length_zero_is_one_row():
    """Triton reads a raw body (header length 0) as the single input at batch 1; the old code
    split it into as many rows as the bytes held."""
    x = np.ones((1, 1, 4, 4), np.float32)
    req = parse_infer_request(x.tobytes(), "0", [IMAGE], OUTS, 8)
    assert req.rows == 1 and req.binary_output and req.inputs["image"].shape == (1, 1, 4, 4)
    with pytest.raises(ProtocolError, match="one image of shape"):
        parse_infer_request(np.ones((5, 1, 4, 4), np.float32).tobytes(), "0", [IMAGE], OUTS, 8)


def test_timeout_is_any_uint64():
    """Triton takes the timeout as a uint64 of microseconds; the old code refused > 3.6e9."""
    body = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 4, 4], "data": [0] * 16}]}
    assert parse({**body, "parameters": {"timeout": 2**64 - 1}}).timeout_us == 2**64 - 1
    assert parse({**body, "parameters": {"timeout": 3_600_000_001}}).timeout_us == 3_600_000_001
    with pytest.raises(ProtocolError, match="uint64"):
        parse({**body, "parameters": {"timeout": 2**64}})


def test_data_with_binary_data_size_is_refused():
    """Triton refuses an input that gives both `data` and binary_data_size; the old code took
    the binary bytes and ignored `data`."""
    x = np.zeros((1, 1, 4, 4), np.float32)
    doc = {"inputs": [{**tensor(x), "parameters": {"binary_data_size": 64}}]}
    with pytest.raises(ProtocolError, match="not as data and binary data"):
        parse(doc, x.tobytes())


def test_triton_prefixed_request_parameters_are_refused():
    """Triton refuses request parameters with its reserved prefix, except the one it takes
    itself (triton_enable_empty_final_response, a bool); the old code let them all through."""
    x = np.zeros((1, 1, 4, 4), np.float32)
    doc = {"inputs": [tensor(x)], "parameters": {"triton_x": 1}}
    with pytest.raises(ProtocolError, match="reserved for Triton usage"):
        parse(doc)
    assert parse({**doc, "parameters": {"triton_enable_empty_final_response": True}}).rows == 1
    with pytest.raises(ProtocolError, match="expected a bool"):
        parse({**doc, "parameters": {"triton_enable_empty_final_response": 1}})


@pytest.mark.parametrize(
    ("doc", "blobs", "header", "message"),
    [
        (None, b"", None, "empty body"),
        ("not json", b"", None, "not valid JSON"),
        ({"inputs": []}, b"", None, "non-empty list"),
        (
            {"inputs": [{"name": "img", "datatype": "FP32", "shape": [1, 1, 4, 4], "data": [0] * 16}]},
            b"",
            None,
            "unknown input",
        ),
        (
            {"inputs": [{"name": "image", "datatype": "INT64", "shape": [1, 1, 4, 4], "data": [0] * 16}]},
            b"",
            None,
            "datatype",
        ),
        (
            {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 4, 4], "data": [0] * 15}]},
            b"",
            None,
            "holds 16 values",
        ),
        (
            {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 5, 4], "data": [0] * 20}]},
            b"",
            None,
            "does not fit",
        ),
        (
            {"inputs": [{"name": "image", "datatype": "FP32", "shape": [9, 1, 4, 4], "data": [0] * 144}]},
            b"",
            None,
            "at most 8",
        ),
        (
            {"inputs": [{"name": "image", "datatype": "FP32", "shape": [0, 1, 4, 4], "data": []}]},
            b"",
            None,
            "empty",
        ),
        (
            {
                "inputs": [
                    {"name": "image", "datatype": "FP32", "shape": [1, 1, 4, 4], "data": [[0] * 3, [0]]}
                ]
            },
            b"",
            None,
            "ragged",
        ),
        (
            {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 4, 4], "data": ["a"] * 16}]},
            b"",
            None,
            "numbers only",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "image",
                        "datatype": "FP32",
                        "shape": [1, 1, 4, 4],
                        "parameters": {"binary_data_size": -1},
                    }
                ]
            },
            b"x",
            None,
            "non-negative",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "image",
                        "datatype": "FP32",
                        "shape": [1, 1, 4, 4],
                        "parameters": {"binary_data_size": 10**12},
                    }
                ]
            },
            b"x" * 64,
            None,
            "runs past",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "image",
                        "datatype": "FP32",
                        "shape": [1, 1, 4, 4],
                        "parameters": {"binary_data_size": 60},
                    }
                ]
            },
            b"x" * 60,
            None,
            "needs 64 bytes",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "image",
                        "datatype": "FP32",
                        "shape": [1, 1, 4, 4],
                        "parameters": {"binary_data_size": 64},
                    }
                ]
            },
            b"\0" * 68,
            None,
            "add up to 64",
        ),
        (
            {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 4, 4], "data": [0] * 16}]},
            b"",
            "99999",
            "does not fit a body",
        ),
        (
            {
                "inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 4, 4], "data": [0] * 16}],
                "outputs": [{"name": "nope"}],
            },
            b"",
            None,
            "unknown output",
        ),
        (
            {
                "inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 4, 4], "data": [0] * 16}],
                "parameters": {"timeout": -5},
            },
            b"",
            None,
            "timeout",
        ),
    ],
)
def test_bad_requests_name_the_problem(doc, blobs, header, message):
    raw = b"" if doc is None else (doc.encode() if isinstance(doc, str) else None)
    with pytest.raises(ProtocolError, match=message) as info:
        parse(doc if not isinstance(doc, str) else None, blobs, header, raw=raw)
    assert info.value.status == 400


def test_duplicate_input_is_refused():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ProtocolError, match="twice"):
        parse({"inputs": [tensor(x), tensor(x)]})


def test_nan_and_inf_pass_through_json_and_binary():
    """As in Triton, the protocol hands non-finite values to the model (perf_analyzer's random
    data is full of them); the old code refused them with a 400."""
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0] = np.nan
    body = json.dumps({"inputs": [tensor(x)]}).encode()  # Python writes NaN; json.loads reads it
    assert np.isnan(parse_infer_request(body, None, [IMAGE], OUTS, 8).inputs["image"][0, 0, 0, 0])
    x[0, 0, 0, 0] = np.inf
    doc = {
        "inputs": [
            {
                "name": "image",
                "datatype": "FP32",
                "shape": [1, 1, 4, 4],
                "parameters": {"binary_data_size": 64},
            }
        ]
    }
    assert np.isinf(parse(doc, x.tobytes()).inputs["image"][0, 0, 0, 0])


def test_fp16_has_no_json_form_but_binary_works():
    spec = InputSpec("image", "float16", (1, 4, 4))
    doc = {"inputs": [{"name": "image", "datatype": "FP16", "shape": [1, 1, 4, 4], "data": [0.5] * 16}]}
    with pytest.raises(ProtocolError, match="FP16 has no JSON form"):
        parse(doc, inputs=[spec])
    x = np.full((1, 1, 4, 4), 0.5, np.float16)
    doc = {
        "inputs": [
            {
                "name": "image",
                "datatype": "FP16",
                "shape": [1, 1, 4, 4],
                "parameters": {"binary_data_size": 32},
            }
        ]
    }
    assert parse(doc, x.tobytes(), inputs=[spec]).inputs["image"].dtype == np.float16


def test_uint8_json_range_is_checked():
    spec = InputSpec("image", "uint8", (1, 4, 4))
    doc = {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 1, 4, 4], "data": [300] * 16}]}
    with pytest.raises(ProtocolError, match="range"):
        parse(doc, inputs=[spec])


def test_response_json_and_binary_in_request_order():
    scores = np.array([[0.1, 0.9]], np.float32)
    poses = np.arange(8, dtype=np.float32).reshape(1, 2, 4)
    req = InferRequest("q", {}, 1, [OutputRequest("poses", True), OutputRequest("scores", None)], False, None)
    body, headers = encode_infer_response("capsnet", "1", req, {"scores": scores, "poses": poses})
    n = int(headers["inference-header-content-length"])
    doc = json.loads(body[:n])
    assert doc["id"] == "q" and doc["model_version"] == "1"
    assert [o["name"] for o in doc["outputs"]] == ["poses", "scores"]
    assert doc["outputs"][1]["data"] == pytest.approx([0.1, 0.9])
    np.testing.assert_array_equal(np.frombuffer(body[n:], np.float32).reshape(1, 2, 4), poses)
    plain, h = encode_infer_response(
        "capsnet", "1", InferRequest(None, {}, 1, None, False, None), {"scores": scores}
    )
    assert h["content-type"] == "application/json" and "id" not in json.loads(plain)
