"""Export a model to TorchScript or ONNX for use without descnet (dynamic batch size).

The file holds the inference form of the model (BatchNorm folded into the convolutions, CSA fused):
float32 patches (B, 1, P, P) in [0, 1] -> unit descriptors (B, D); ONNX input "patches", output
"descriptors". Before the file is moved into place it is loaded back and run on 3 patches against the
PyTorch model (TorchScript always; ONNX with onnxruntime when installed): a difference over 1e-5 is an
error and writes nothing.

examples:
  descnet export --model hardnet:runs/lib/best.pt --format torchscript --out hardnet.pt
  descnet export --model runs/lib --format onnx --out hardnet-csa.onnx
  python -c "import torch; net = torch.jit.load('hardnet.pt'); print(net(torch.rand(4, 1, 32, 32)).shape)"
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="SPEC",
                        help="model SPEC: registry name, NAME:WEIGHTS, checkpoint or run directory")
    parser.add_argument("--format", required=True, choices=("torchscript", "onnx"))
    parser.add_argument("--out", required=True, metavar="FILE", help="file to write (replaced atomically)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version (default 17)")
    parser.add_argument("--no-fuse", action="store_true",
                        help="trace the model as written instead of its fused inference form")
    parser.add_argument("--no-verify", action="store_true", help="skip loading the file back to compare outputs")


def run(args: argparse.Namespace) -> int:
    from descnet.cli.common import output_file
    from descnet.models.export import export_model
    from descnet.models import resolve_model

    output_file(args.out, "model.onnx" if args.format == "onnx" else "model.pt")
    model = resolve_model(args.model)
    result = export_model(model, args.out, args.format, fuse=not args.no_fuse, opset=args.opset,
                          verify=not args.no_verify)
    check = ("not checked" if result.checked_with == "nothing" else
             f"checked with {result.checked_with}" + ("" if result.max_difference is None else
                                                      f": max |difference| {result.max_difference:.1e}"))
    print(f"wrote {result.path} ({args.format}, model {args.model}, patches (B, 1, {getattr(model, 'patch_size', 32)}, "
          f"{getattr(model, 'patch_size', 32)}) -> (B, {getattr(model, 'descriptor_dim', '?')}); {check})")
    return 0
