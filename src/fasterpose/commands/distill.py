"""``fasterpose distill INPUT... --teacher CKPT --student fasterpose_r18 (--boxes DETS.json | --full-image) --out DIR``.

Trains a FasterPose student to reproduce a teacher's flip-tested heatmaps on unlabeled person crops (images, folders,
videos); see :mod:`fasterpose.engine.distill`. The result, ``DIR/student.pt``, is an ordinary checkpoint.
"""

from __future__ import annotations

import argparse
import json

from . import _options as opt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="images, folders of images or video files")
    parser.add_argument("--teacher", "--weights", dest="teacher", required=True, metavar="CKPT",
                        help="teacher: a fasterpose checkpoint, published weights by name (`fasterpose weights "
                        "list`) or a SimpleBaseline file of MMPose or the official release")
    parser.add_argument("--student", default="fasterpose_r18", help="student model (default fasterpose_r18)")
    parser.add_argument("--student-opt", type=opt.key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="student create_model option, e.g. output_stride=16 (repeatable)")
    boxes = parser.add_mutually_exclusive_group(required=True)
    boxes.add_argument("--boxes", metavar="DETS.json", help="person detections (COCO results or wrapper json)")
    boxes.add_argument("--full-image", action="store_true", help="one person box = the whole image")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (student.pt, last.pt, report)")
    parser.add_argument("--loss", choices=("rce", "mse"), default="rce",
                        help="rce: student sigmoid vs teacher heatmaps clipped to [0, 1] (default); mse: raw outputs")
    parser.add_argument("--epochs", type=opt.non_negative_int, default=40,
                        help="phase 1 epochs, frozen backbone (default 40)")
    parser.add_argument("--finetune-epochs", type=opt.non_negative_int, default=0,
                        help="phase 2 epochs, end to end (default 0)")
    parser.add_argument("--batch-size", type=opt.positive_int, default=32)
    parser.add_argument("--lr", type=opt.learning_rate, default=2e-3, help="phase 1 learning rate (default 2e-3)")
    parser.add_argument("--finetune-lr", type=opt.learning_rate, default=2e-4,
                        help="phase 2 learning rate (default 2e-4)")
    parser.add_argument("--init-backbone", choices=("auto", "teacher", "imagenet", "none"), default="auto",
                        help="student backbone start: the teacher's where the architecture matches (auto)")
    parser.add_argument("--no-mirror", action="store_true", help="do not add mirrored crops")
    parser.add_argument("--det-thr", type=opt.fraction, default=0.3, help="minimum box score (default 0.3)")
    parser.add_argument("--frame-step", type=opt.positive_int, default=1, help="every n-th video frame (default 1)")
    parser.add_argument("--max-crops", type=opt.positive_int, default=None, help="at most this many crops")
    parser.add_argument("--seed", type=opt.seed, default=0)
    parser.add_argument("--threads", type=opt.thread_count, default=None, help="torch threads (default: one per core)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..engine.distill import DistillSettings, distill
    from ..io_utils import check_input_file, claim_outputs

    settings = DistillSettings(student=args.student, student_kwargs=opt.unique_keys(args.student_opt, "--student-opt"),
                               loss=args.loss, epochs=args.epochs, finetune_epochs=args.finetune_epochs,
                               batch_size=args.batch_size, lr=args.lr, finetune_lr=args.finetune_lr,
                               init_backbone=args.init_backbone, mirror=not args.no_mirror, seed=args.seed,
                               threads=args.threads)
    out = Path(args.out).expanduser()
    for source in map(Path, args.inputs):  # all of them now, not after the teacher's labels of the first ones
        if not source.is_dir():
            check_input_file(source, "input (images, folders of images or video files)")
    if not args.resume and not any((out / n).exists() for n in ("last.pt", "student.pt")):  # else: "holds a run"
        claim_outputs(out, ["last.pt", "student.pt", "report.json"], f"--out {out}", create=False)
    report = distill(args.teacher, args.inputs, args.out, settings, boxes=args.boxes, det_thr=args.det_thr,
                     frame_step=args.frame_step, max_crops=args.max_crops, resume=args.resume)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['student']} distilled from {report['teacher']} ({report['teacher_model']}) on "
              f"{report['crops']} crops of {report['images']} images; backbone from: {report['backbone_from']}; "
              f"{report['seconds']:.0f} s ({report['cpu_seconds']:.0f} s CPU); final loss {report['final_loss']:.5f}\n"
              f"checkpoint: {report['checkpoint']}")
    return 0
