#!/usr/bin/python3
"""The PyTorch + PEFT peer of bench/pytorch-vs-graft.sh.

Trains the same BERT-like encoder (all-MiniLM-L6-v2 or bge-small-en-v1.5) on the same batches as
Graft's SideBySideBenchmark, the way Hugging Face PEFT does LoRA, in eager PyTorch (Debian's
python3-torch, OpenBLAS):

  * the encoder is written here as nn.Modules in the layout of transformers' BertModel
    (nn.Linear with [out, in] weights, nn.LayerNorm, exact erf GELU, additive attention mask);
    its weights are read from the ONNX file with the onnx package (no hub access): named
    initializers for embeddings, biases and LayerNorms, and the weight input of each
    /encoder/layer.N/.../MatMul node for the linear layers (the exporter names them onnx::MatMul_*);
  * LoRA as peft.tuners.lora.Linear: lora_A = Linear(in, r, bias=False) with Kaiming-uniform
    (a = sqrt(5)), lora_B = Linear(r, out, bias=False) at zero, y = base(x) + B(A(x)) * alpha / r,
    on query and value, everything else frozen (requires_grad False);
  * a masked mean-pooling head, Linear(hidden, classes) with N(0, 0.02) weights;
  * AdamW (0.9, 0.999, eps 1e-8, weight decay 0.01), linear warm-up over 10% of the steps then
    linear decay to 0, gradient clipping at norm 1: what graft train does.

Prints one line RESULT {...}: examples, the training loop's seconds, the process's seconds, the
first and last losses and the peak resident set (VmHWM).
"""
import argparse
import json
import math
import struct
import sys
import time

START = time.time()

import onnx  # noqa: E402
import onnx.numpy_helper  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MAGIC = 0x47524654


def read_batches(path):
    with open(path, "rb") as f:
        data = f.read()
    magic, n, classes = struct.unpack_from("<iii", data, 0)
    if magic != MAGIC:
        sys.exit(f"{path} is not a batch file written by SideBySideBenchmark export")
    off = 12
    batches = []
    for _ in range(n):
        rows, length = struct.unpack_from("<ii", data, off)
        off += 8
        k = rows * length

        def take(count):
            nonlocal off
            t = torch.frombuffer(bytearray(data[off : off + 8 * count]), dtype=torch.int64)
            off += 8 * count
            return t

        ids = take(k).view(rows, length)
        mask = take(k).view(rows, length)
        types = take(k).view(rows, length)
        labels = take(rows)
        batches.append((ids, mask, types, labels))
    return batches, classes


class OnnxWeights:
    """The encoder's weights by their transformers names, read from the ONNX graph."""

    def __init__(self, path):
        model = onnx.load(path)
        g = model.graph
        self.init = {i.name: i for i in g.initializer}
        self.linear = {}
        for node in g.node:
            if node.op_type == "MatMul" and node.name.startswith("/encoder/layer.") and node.input[1] in self.init:
                # /encoder/layer.3/attention/self/query/MatMul -> encoder.layer.3.attention.self.query
                self.linear[node.name[1:].rsplit("/", 1)[0].replace("/", ".")] = node.input[1]
        self.layers = 1 + max(int(k.split(".")[2]) for k in self.linear)

    def tensor(self, name):
        return torch.from_numpy(onnx.numpy_helper.to_array(self.init[name]).copy())

    def linear_weight(self, module):
        # ONNX MatMul takes [in, out]; nn.Linear keeps [out, in].
        return self.tensor(self.linear[module]).t().contiguous()


def frozen_linear(w, module):
    weight = w.linear_weight(module)
    lin = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        lin.weight.copy_(weight)
        lin.bias.copy_(w.tensor(module + ".bias"))
    return lin


def frozen_layernorm(w, prefix, eps):
    weight = w.tensor(prefix + ".weight")
    ln = nn.LayerNorm(weight.shape[0], eps=eps)
    with torch.no_grad():
        ln.weight.copy_(weight)
        ln.bias.copy_(w.tensor(prefix + ".bias"))
    return ln


class LoraLinear(nn.Module):
    """peft.tuners.lora.Linear with dropout 0: base(x) + lora_B(lora_A(x)) * scaling."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base_layer(x) + self.lora_B(self.lora_A(x)) * self.scaling


class Layer(nn.Module):
    def __init__(self, w, i, heads, eps, r, alpha):
        super().__init__()
        p = f"encoder.layer.{i}"
        self.query = LoraLinear(frozen_linear(w, p + ".attention.self.query"), r, alpha)
        self.key = frozen_linear(w, p + ".attention.self.key")
        self.value = LoraLinear(frozen_linear(w, p + ".attention.self.value"), r, alpha)
        self.attn_out = frozen_linear(w, p + ".attention.output.dense")
        self.attn_ln = frozen_layernorm(w, p + ".attention.output.LayerNorm", eps)
        self.inter = frozen_linear(w, p + ".intermediate.dense")
        self.out = frozen_linear(w, p + ".output.dense")
        self.out_ln = frozen_layernorm(w, p + ".output.LayerNorm", eps)
        self.heads = heads

    def split(self, x):
        b, s, d = x.shape
        return x.view(b, s, self.heads, d // self.heads).permute(0, 2, 1, 3)

    def forward(self, x, bias):
        b, s, d = x.shape
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d // self.heads) + bias
        ctx = torch.matmul(scores.softmax(-1), v).permute(0, 2, 1, 3).reshape(b, s, d)
        x = self.attn_ln(self.attn_out(ctx) + x)
        return self.out_ln(self.out(F.gelu(self.inter(x))) + x)


class Classifier(nn.Module):
    def __init__(self, w, classes, heads, eps, r, alpha):
        super().__init__()
        self.word = nn.Embedding.from_pretrained(w.tensor("embeddings.word_embeddings.weight"))
        self.pos = nn.Embedding.from_pretrained(w.tensor("embeddings.position_embeddings.weight"))
        self.token_type = nn.Embedding.from_pretrained(w.tensor("embeddings.token_type_embeddings.weight"))
        self.emb_ln = frozen_layernorm(w, "embeddings.LayerNorm", eps)
        self.layers = nn.ModuleList(Layer(w, i, heads, eps, r, alpha) for i in range(w.layers))
        hidden = self.word.weight.shape[1]
        self.head = nn.Linear(hidden, classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, ids, mask, types):
        s = ids.shape[1]
        pos = torch.arange(s).unsqueeze(0)
        x = self.emb_ln(self.word(ids) + self.pos(pos) + self.token_type(types))
        m = mask.to(x.dtype)
        bias = (1.0 - m)[:, None, None, :] * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, bias)
        m3 = m.unsqueeze(-1)
        pooled = (x * m3).sum(1) / m3.sum(1).clamp(min=1e-9)
        return self.head(pooled)


def vm_hwm_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return -1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--batches", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--eps", type=float, default=1e-12)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    batches, classes = read_batches(a.batches)
    model = Classifier(OnnxWeights(a.model), classes, a.heads, a.eps, a.rank, a.alpha)
    for name, p in model.named_parameters():
        p.requires_grad = "lora_" in name or name.startswith("head.")
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    steps = len(batches)
    warmup = round(0.1 * steps)

    def factor(step):  # step counts from 0, as LambdaLR does
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step - 1) / max(1, steps - warmup)) if steps > warmup else 1.0

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    model.train()
    examples, first, last = 0, float("nan"), float("nan")
    loop_start = time.time()
    for i, (ids, mask, types, labels) in enumerate(batches):
        logits = model(ids, mask, types)
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if i == 0:
            first = loss.item()
        last = loss.item()
        examples += labels.shape[0]
        if (i + 1) % 10 == 0 or i + 1 == steps:
            print(f"pytorch: step {i + 1}/{steps} loss {last:.4f} {examples / (time.time() - loop_start):.1f} ex/s",
                  file=sys.stderr, flush=True)
    loop = time.time() - loop_start
    print("RESULT " + json.dumps({
        "side": "pytorch", "examples": examples, "loop_s": round(loop, 2), "job_s": round(time.time() - START, 2),
        "first_loss": round(first, 4), "last_loss": round(last, 4), "peak_rss_mib": round(vm_hwm_mib()),
        "trainable": sum(p.numel() for p in params)}), flush=True)


if __name__ == "__main__":
    main()
