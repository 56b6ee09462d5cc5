"""The flag definitions of the one command-line parser (ops/opts.py), one function per group. Preset-dependent
flags default to None, so that ops.opts.parse_args can tell "not passed" from "passed" and fill the preset."""

from __future__ import annotations

import argparse

from models import DEFAULT_METHOD, get_method, method_names
from models.core.cli import arch_type
from models.core.recipes import DATASET_PRESET
from ops.data.augment import TRAIN_CROPS
from ops.engine.host_memory import HOST_MEMORY

DATASETS = tuple(DATASET_PRESET)
# Flags without a value (False when not given); every other flag defaults to None ("not given").
STORE_TRUE = (
    "evaluate",
    "compile",
    "tada_activations",
    "multiprocessing_distributed",
    "trust_checkpoint",
    "deterministic",
    "sync_bn",
    "override_config",
    "print_config",
)


class _Unsupported(argparse.Action):
    """A flag of the original parser that this framework refuses with a reason (instead of ignoring it)."""

    def __init__(self, option_strings, dest, reason: str = "", **kwargs):
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=f"not supported: {reason}"
        )
        self.reason = reason

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is not supported: {self.reason}")


def add_data_flags(g: argparse._ArgumentGroup) -> None:
    """Adds the data flags."""
    g.add_argument(
        "dataset_pos", nargs="?", metavar="dataset", help=f"TSM/X3D form: one of {', '.join(DATASETS)}"
    )
    g.add_argument(
        "modality_pos", nargs="?", metavar="modality", help="TSM/X3D form: RGB (the only modality)"
    )
    g.add_argument("--dataset", dest="dataset_opt", help="AN form of the positional dataset")
    g.add_argument("--data_dir", help="AN form: dataset folder (lists + frames) of actnet/fcvid/minik")
    g.add_argument("--root_dataset", help="root of all datasets (default: env ADAFOCUS_DATA)")
    g.add_argument("--train_list", help="override the dataset config's train list file")
    g.add_argument("--val_list", help="override the dataset config's val list file")
    g.add_argument(
        "--video_root",
        help="read raw videos <video_root>/<list path>[.mp4|.avi|.mkv|.webm|.mov] instead of frame folders",
    )
    g.add_argument(
        "--video_ext",
        help="with --video_root: read <list path><EXT> (e.g. .avi) instead of searching the known extensions",
    )
    g.add_argument("--frames_root", help="custom dataset: folder of the frame folders <DIR>/<list path>/")
    g.add_argument(
        "--categories", help="custom dataset: class names, one per line (the first line is label 0)"
    )
    g.add_argument("--image_tmpl", help="custom dataset: frame file name (img_{:05d}.jpg; %%05d also works)")
    g.add_argument(
        "--multi_label",
        action="store_const",
        const=True,
        help="custom dataset: rows `path num_frames label [label2 label3]`, judged by mAP",
    )
    g.add_argument(
        "--on_bad_video",
        choices=("error", "skip"),
        help="an unreadable video or frame folder (or a duplicate list row): stop with its file and list line "
        "(error, default) or skip it and count it (`bad_videos` in metrics.jsonl)",
    )
    g.add_argument(
        "--on_nonfinite",
        choices=("error", "skip"),
        help="a NaN/inf loss or gradient: stop with the step, the loss parts and the batch's videos (error, "
        "default) or skip that update on every rank and count it (`nonfinite_steps` in metrics.jsonl)",
    )
    g.add_argument(
        "-j", "--workers", type=int, help="DataLoader workers, split over local processes (preset)"
    )
    g.add_argument("--input_size", type=int, help="frame crop side S (default 224)")
    g.add_argument("--test_crops", type=int, choices=(1, 3, 5, 10), help="spatial views at eval (default 1)")
    g.add_argument("--num_clips", type=int, help="temporal clips at eval, logits averaged (default 1)")
    g.add_argument(
        "--shared_crop",
        action="store_const",
        const=True,
        help="training: one crop and flip for the glance and candidate frames of a clip (default: one "
        "each, as the original)",
    )
    g.add_argument(
        "--no_shared_crop",
        "--independent_crop",
        dest="shared_crop",
        action="store_const",
        const=False,
        help="training: one crop and flip each for the glance and candidate frames, as the original (the default "
        "but for the synthetic data, whose recipe shares them)",
    )
    g.add_argument(
        "--train_crop",
        choices=TRAIN_CROPS,
        help="training crop: tsm (multi-scale crop with fixed offsets, the Uni-AdaFocus/TSM default), the "
        "Efficient-3DCNNs multi-scale random | corner | center crops, or TAdaConv's jitter (short side in "
        "[224, 340]) | rrc (random resized crop) (default: the model's; e3d: corner; tada: jitter, convnext rrc)",
    )
    g.add_argument(
        "--randaugment",
        metavar="SPEC",
        help="training: RandAugment on each clip, e.g. rand-m9-n4-mstd0.5-inc1 (timm's grammar); none: off "
        "(recipe: tadaconvnextv2_* on, else off)",
    )
    g.add_argument(
        "--grayscale",
        type=float,
        metavar="P",
        help="training: turn a clip grey with probability P (recipe: tadaconvnextv2_* 0.2, else 0)",
    )
    g.add_argument(
        "--resize_backend",
        choices=("pil", "cv2"),
        help="frame resizing: pil (default, PIL bilinear as the original) or cv2 (OpenCV, no antialiasing when shrinking)",
    )


def add_model_flags(g: argparse._ArgumentGroup) -> None:
    """Adds the model flags."""
    g.add_argument(
        "--model",
        "--method",
        dest="model",
        choices=method_names(),
        help=f"the method ({DEFAULT_METHOD} by default, or a baseline): "
        + "; ".join(f"{n}: {get_method(n).description}" for n in method_names()),
    )
    g.add_argument("--arch", help="Uni-AdaFocus: only names the run (store_name); baselines: the backbone")
    g.add_argument(
        "--focus_arch",
        type=arch_type,
        help="focus backbone / a baseline's backbone (preset: resnet50 | x3d_l)",
    )
    g.add_argument(
        "--num_segments",
        type=int,
        help="AN form: N candidate frames (= --num_input_focus_segments); baselines: frames per clip",
    )
    g.add_argument("--dropout", "--do", type=float, help="dropout before the heads (preset)")
    g.add_argument(
        "--focus_width_mult", type=float, help="MobileNetV2 focus / baseline width multiplier (1.0)"
    )
    g.add_argument("--focus_base_width", type=int, help="ResNet focus / baseline base width (64)")
    g.add_argument("--consensus_type", choices=("avg",), help="TSN consensus: only avg")
    g.add_argument(
        "--shift", action="store_const", const=True, help="temporal shift in 2-D backbones (tsm preset: on)"
    )
    g.add_argument("--no_shift", dest="shift", action="store_const", const=False, help="disable --shift")
    g.add_argument("--shift_div", type=int, help="shift 1/div of the channels each way (8)")
    g.add_argument("--shift_place", choices=("blockres",), help="only blockres")
    g.add_argument("--temporal_pool", action=_Unsupported, reason="temporal pooling was never implemented")
    g.add_argument("--non_local", action=_Unsupported, reason="non-local blocks are not part of Uni-AdaFocus")
    g.add_argument("--dense_sample", action=_Unsupported, reason="use --num_clips for multi-clip evaluation")
    g.add_argument(
        "--pretrain",
        choices=("imagenet", "none"),
        help="imagenet: the backbones' published weights (X3D: its Kinetics .pyth); none: random",
    )
    g.add_argument(
        "--tune_from", help="initialise from a checkpoint, dropping heads whose class count differs"
    )
    g.add_argument(
        "--partial_bn",
        "--partialbn",
        dest="partial_bn",
        action="store_const",
        const=True,
        help="TSN partial BN: freeze every BatchNorm but the first of each backbone",
    )
    g.add_argument(
        "--no_partial_bn",
        "--no_partialbn",
        "--npb",
        dest="partial_bn",
        action="store_const",
        const=False,
        help="disable --partial_bn: train all BatchNorm layers",
    )
    g.add_argument(
        "--student_size",
        type=int,
        help="resize every frame to this side inside the model (bilinear), in training and evaluation: the "
        "network is built for such frames, the data pipeline stays at --input_size (ResKD: 112; default off)",
    )
    g.add_argument(
        "--multilabel_ce",
        choices=("first", "sum"),
        help="baselines, multi-label data: CE of the first label (first, default) or the sum of every label's "
        "CE (sum, ResKD on ActivityNet / FCVID)",
    )
    g.add_argument(
        "--consensus_first",
        action="store_const",
        const=True,
        help="tsn / tsm: average the pooled features over the frames, then the classifier (mmaction's TSN "
        "head, ResKD's students; default: the TSM code's classifier per frame, then the average)",
    )


def add_optim_flags(g: argparse._ArgumentGroup) -> None:
    """Adds the optimisation flags."""
    g.add_argument("--epochs", type=int, help="(preset 50)")
    g.add_argument(
        "-b",
        "--batch_size",
        "--batch-size",
        dest="batch_size",
        type=int,
        help="global batch, split over all processes (preset)",
    )
    g.add_argument("--lr", type=float, help="base learning rate (preset)")
    g.add_argument("--lr_type", choices=("cos", "step"), help="(preset cos)")
    g.add_argument("--lr_steps", type=float, nargs="+", help="epochs where the step schedule decays x0.1")
    g.add_argument(
        "--lr_per_step",
        action="store_const",
        const=True,
        help="update the lr every iteration (cosine and warm-up at the fractional epoch; recipe: tada on, as "
        "TAdaConv; else per epoch, as the other originals)",
    )
    g.add_argument("--lr_per_epoch", dest="lr_per_step", action="store_const", const=False, help="per epoch")
    g.add_argument(
        "--warmup_epochs",
        type=float,
        help="linear warm-up over the first W epochs from --warmup_start_lr to the schedule's lr at W (recipe: "
        "0; tada 8, as TAdaConv)",
    )
    g.add_argument("--warmup_start_lr", type=float, help="the lr the warm-up starts from (tada2d_r50: 0.01)")
    g.add_argument(
        "--optimizer",
        choices=("sgd", "adamw"),
        help="sgd (recipe default) or adamw (betas 0.9 / 0.999, decoupled weight decay; tadaconvnextv2_*)",
    )
    g.add_argument("--momentum", type=float, help="SGD momentum (0.9)")
    g.add_argument("--dampening", type=float, help="SGD dampening (0; e3d: 0.9, as Efficient-3DCNNs)")
    g.add_argument(
        "--nesterov", action="store_const", const=True, help="Nesterov momentum (off; tada: on, as TAdaConv)"
    )
    g.add_argument(
        "--no_nesterov", dest="nesterov", action="store_const", const=False, help="disable --nesterov"
    )
    g.add_argument(
        "--weight_decay", "--wd", "--weight-decay", dest="weight_decay", type=float, help="(preset)"
    )
    g.add_argument(
        "--clip_gradient",
        "--gd",
        "--clip-gradient",
        dest="clip_gradient",
        type=float,
        help="clip the gradient norm; 0 = off (preset: 20, an: off)",
    )
    g.add_argument(
        "--amp",
        nargs="?",
        const="auto",
        choices=("auto", "bf16", "fp16", "none"),
        help="mixed precision for training on CUDA; bare --amp = auto: bf16 on GPUs of compute capability >= 8.0, "
        "else fp16 (the log says which) (preset fp16, actnet none); evaluation runs in float32 unless --amp is "
        "given; a no-op on CPU",
    )
    g.add_argument(
        "--paramwise",
        choices=("model", "rkd"),
        help="optimizer groups: the model's (default) or ResKD's split of each: conv/linear weights (lr, wd), "
        "biases (2 x lr, no wd), BatchNorm/GroupNorm (lr, no wd)",
    )
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument(
        "--tada_activations",
        action="store_true",
        help="TAdaConv layers calibrate the activations instead of building a weight per video and frame: the "
        "same convolution up to float rounding, a training step 5x faster on CPU (docs/clip_networks.md); off: "
        "the original's form",
    )
    g.add_argument(
        "--seed",
        type=int,
        help="seed python/numpy/torch (+rank). Default: training draws a seed at random and stores it in the "
        "checkpoint (`seed`), which --resume reuses; evaluation uses 0",
    )


def add_run_flags(g: argparse._ArgumentGroup) -> None:
    """Adds the run flags."""
    g.add_argument("--root_log", help="log folder (default log)")
    g.add_argument("--root_model", help="checkpoint folder (default: = --root_log)")
    g.add_argument("--store_name", help="run name (default: built as the originals did)")
    g.add_argument("--suffix", help="appended to store_name")
    g.add_argument(
        "-p",
        "--print_freq",
        "--print-freq",
        dest="print_freq",
        type=int,
        help="log a line every n training iterations (20)",
    )
    g.add_argument(
        "-ef", "--eval_freq", "--eval-freq", dest="eval_freq", type=int, help="validate every n epochs (1)"
    )
    g.add_argument(
        "--resume",
        help="checkpoint to resume (ours or the original implementation's); `auto`: the run folder's "
        "ckpt.pth.tar when it exists, else a fresh start (a preempted job restarts with the same command line)",
    )
    g.add_argument(
        "--override_config",
        action="store_true",
        help="with --resume: build the model from the flags where they differ from the checkpoint's model_config "
        "(e.g. evaluate with more frames); the log lists each change. Default: a model flag that differs from the "
        "checkpoint's is an error, and the flags left out take the checkpoint's values",
    )
    g.add_argument(
        "--trust_checkpoint",
        action="store_true",
        help="open --resume / --tune_from files as full pickles, which runs code from the file: only for files "
        "you trust (default off: tensors and plain types only, anything else is refused)",
    )
    g.add_argument(
        "--start_epoch",
        "--start-epoch",
        dest="start_epoch",
        type=int,
        help="first epoch (default: the checkpoint's epoch when resuming, else 0)",
    )
    g.add_argument("-e", "--evaluate", action="store_true", help="validate only")
    g.add_argument(
        "--print_config",
        action="store_true",
        help="print the run's resolved configuration (model_config, every flag's value with the preset's and "
        "the method's recipe applied, the run folder) as JSON and exit",
    )
    g.add_argument(
        "--save_scores",
        help="write the per-video scores of the evaluation to FILE (.npz: fused logits, exit logits, and each "
        "view's raw logits)",
    )
    g.add_argument(
        "--view_fusion",
        choices=("logits", "softmax"),
        help="evaluation with several views: average the raw logits (Uni-AdaFocus, TSM, X3D, AdaFocus) or the "
        "softmax probabilities (e3d, tada, as Efficient-3DCNNs and TAdaConv) (default: the method's original)",
    )
    g.add_argument(
        "--policy",
        choices=("learned", "random"),
        help="evaluation only: random = the same model with random patches and uniform frames (learned)",
    )
    g.add_argument(
        "--exit_criterion",
        "--criteria",
        dest="criteria",
        nargs="+",
        choices=("confidence", "max_softmax", "entropy"),
        help="test_early_exit.py: exit criteria, one curve each (confidence entropy); scripts/predict.py takes "
        "one of them under the same name",
    )


def add_distributed_flags(g: argparse._ArgumentGroup) -> None:
    """Adds the distributed / device flags."""
    g.add_argument("--device", help="auto (cuda if available, else cpu) | cpu | cuda | cuda:N")
    g.add_argument(
        "--dist_url", "--dist-url", dest="dist_url", help="tcp://host:port or env:// (default: auto)"
    )
    g.add_argument(
        "--dist_backend",
        "--dist-backend",
        dest="dist_backend",
        choices=("nccl", "gloo"),
        help="default: nccl on CUDA, gloo on CPU",
    )
    g.add_argument("--world_size", "--world-size", dest="world_size", type=int, help="number of nodes (-1)")
    g.add_argument("--rank", type=int, help="node rank (-1)")
    g.add_argument(
        "--multiprocessing_distributed",
        "--multiprocessing-distributed",
        dest="multiprocessing_distributed",
        action="store_true",
        help="spawn one process per GPU (per --nproc_per_node on CPU)",
    )
    g.add_argument(
        "--nproc_per_node", type=int, help="processes to spawn (default: CUDA device count, CPU: 1)"
    )
    g.add_argument("--gpu", type=int, help="single-process mode on this GPU index")
    g.add_argument(
        "--tf32",
        choices=("on", "off"),
        help="TF32 matmuls and convolutions on Ampere+ GPUs: off (default: float32 logits within ~1e-5 of the "
        "CPU's) or on (faster, 10-bit mantissa)",
    )
    g.add_argument(
        "--host_memory",
        choices=HOST_MEMORY,
        help="CPU memory the process frees: keep (default; reused by the next batch instead of being faulted in "
        "and zeroed again: a CPU eval forward about 2x faster, same outputs) or release (glibc's own behaviour)",
    )
    g.add_argument(
        "--deterministic",
        action="store_true",
        help="CUDA: deterministic cuDNN / cuBLAS algorithms (warn-only where none exists, e.g. grid_sample "
        "backward), no cuDNN autotuning; slower",
    )
    g.add_argument(
        "--sync_bn",
        action="store_true",
        help="training on several GPUs: BatchNorm statistics over the global batch (SyncBatchNorm), e.g. for one "
        "video per GPU, where the V2 Sth-Sth policy's BatchNorm1d has a single value per channel",
    )
    g.add_argument(
        "--local_rank",
        "--local-rank",
        dest="local_rank",
        type=int,
        help="set by torch.distributed.launch (legacy); torchrun uses env LOCAL_RANK",
    )
