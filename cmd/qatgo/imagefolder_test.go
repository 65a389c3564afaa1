package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/data/imagefolder"
	"github.com/qatgo/qatgo/data/preprocess"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/onnx"
	"github.com/qatgo/qatgo/onnx/onnxpb"
	"github.com/qatgo/qatgo/qmodel"
	"google.golang.org/protobuf/proto"
	"gorgonia.org/tensor"
)

// writeColourFolder writes a labelled folder of 3 classes (red, green, blue dominant) with PNG,
// JPEG and PGM files of sizes other than the model's.
func writeColourFolder(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	for c, name := range []string{"blue", "green", "red"} {
		cls := filepath.Join(dir, name)
		if err := os.MkdirAll(cls, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 6; i++ {
			w, h := 20+4*i, 14+3*i
			img := image.NewNRGBA(image.Rect(0, 0, w, h))
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					v := [3]uint8{uint8(rng.IntN(80)), uint8(rng.IntN(80)), uint8(rng.IntN(80))}
					v[2-c] = uint8(150 + rng.IntN(106)) // blue: channel 2, green 1, red 0
					if x == 0 && y == 0 {
						v = [3]uint8{0, 255, 0}
					}
					img.SetNRGBA(x, y, color.NRGBA{v[0], v[1], v[2], 255})
				}
			}
			var buf bytes.Buffer
			var err error
			ext := ".png"
			if i%2 == 1 {
				ext = ".jpg"
				err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
			} else {
				err = png.Encode(&buf, img)
			}
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(cls, fmt.Sprintf("%d%s", i, ext)), buf.Bytes(), 0o644)
		}
		// a grey PGM in every class (replicated into RGB)
		os.WriteFile(filepath.Join(cls, "grey.pgm"), append([]byte("P5 5 4 255\n"), bytes.Repeat([]byte{uint8(40 * c)}, 20)...), 0o644)
	}
}

// TestImageFolderNormalisedModel runs the command line on a model that is not MNIST-shaped: an
// ONNX CNN on 3x12x16 RGB input whose metadata_props carry a per-channel normalisation ->
// qatgo import (the checkpoint records it) -> qatgo export -data FOLDER (PTQ calibration on
// images of other sizes, PNG/JPEG/PGM, resized and normalised as recorded; the .qm and the QDQ
// ONNX carry the normalisation) -> qatgo eval -data FOLDER, whose accuracy must equal the one
// computed here by running the .qm on the normalised images directly.
func TestImageFolderNormalisedModel(t *testing.T) {
	dir := t.TempDir()
	imgs := filepath.Join(dir, "imgs")
	writeColourFolder(t, imgs)
	src := graph.NewModel("rgbnet", []int{3, 12, 16}, tensor.Float32, 7)
	src.Conv2d("conv1", graph.Conv{Out: 6, Kernel: 3, Pad: 1})
	src.ReLU("relu1")
	src.MaxPool2d("pool1", 2, 2, 0)
	src.Flatten("flatten")
	src.Linear("fc", 3, true)
	mp, err := onnx.FromModel(src, onnx.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mean, std := []float32{0.5, 0.4, 0.3}, []float32{0.25, 0.2, 0.3}
	mp.MetadataProps = []*onnxpb.StringStringEntryProto{
		{Key: proto.String(preprocess.MetaMean), Value: proto.String("0.5,0.4,0.3")},
		{Key: proto.String(preprocess.MetaStd), Value: proto.String("0.25,0.2,0.3")}}
	in, ckpt, qm, qdq := filepath.Join(dir, "m.onnx"), filepath.Join(dir, "m.ckpt"), filepath.Join(dir, "m.qm"), filepath.Join(dir, "q.onnx")
	if err := onnx.WriteFile(in, mp); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runMain("import", in, "-o", ckpt); code != 0 || !strings.Contains(out, "normalisation recorded") {
		t.Fatalf("import: code %d\n%s\n%s", code, out, errs)
	}
	ck, err := graph.LoadCheckpoint(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Meta[preprocess.MetaMean] != "0.5,0.4,0.3" || ck.Meta[preprocess.MetaStd] != "0.25,0.2,0.3" {
		t.Fatalf("checkpoint metadata %v", ck.Meta)
	}
	code, out, errs := runMain("export", "-data", imgs, "-calib-batches", "1", "-parity", "21", "-o", qm, ckpt)
	if code != 0 || !strings.Contains(errs, "PTQ calibration") || !strings.Contains(errs, imgs) {
		t.Fatalf("export: code %d\n%s\n%s", code, out, errs)
	}
	m, err := qmodel.ReadFile(qm)
	if err != nil {
		t.Fatal(err)
	}
	if m.Meta[preprocess.MetaMean] != "0.5,0.4,0.3" || m.Meta[preprocess.MetaStd] != "0.25,0.2,0.3" || fmt.Sprint(m.Labels) != "[blue green red]" {
		t.Fatalf(".qm metadata %v labels %v", m.Meta, m.Labels)
	}
	// Calibration saw normalised inputs: the images hold 0 and 255 in channel 1 (the green
	// corner pixel and the dominant channel), so the input range reaches (0-0.4)/0.2 = -2 and
	// (1-0.4)/0.2 = 3, not [0,1].
	inQ := m.Tensors[m.Ops[0].Outputs[0]].Quant
	if lo, hi := inQ.Scales[0]*float32(-128-inQ.ZeroPoints[0]), inQ.Scales[0]*float32(127-inQ.ZeroPoints[0]); lo > -1.9 || hi < 2.9 {
		t.Fatalf("input quantization range [%v, %v]: calibration did not normalise", lo, hi)
	}
	// eval's accuracy equals this test's: the .qm run on the folder's images normalised here.
	spec, err := preprocess.New(3, 12, 16)
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := imagefolder.Load(imgs, spec)
	if err != nil {
		t.Fatal(err)
	}
	md, err := infer.Load(m)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, len(set.Pixels))
	for i, p := range set.Pixels {
		c := i % 3
		x[i] = (float32(p)/255 - mean[c]) / std[c]
	}
	y, err := md.NewSession().Run(x, set.Len())
	if err != nil {
		t.Fatal(err)
	}
	correct := 0
	for i := 0; i < set.Len(); i++ {
		if infer.Argmax(y[3*i:3*i+3]) == int(set.Labels[i]) {
			correct++
		}
	}
	code, out, errs = runMain("eval", "-data", imgs, qm)
	want := fmt.Sprintf("(%d/%d image-folder", correct, set.Len())
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "from the model's metadata") {
		t.Fatalf("eval: code %d, want %q in\n%s\n%s", code, want, out, errs)
	}
	// qatgo run normalises one image the same way: every image's top class and score match.
	for i := 0; i < set.Len(); i += 5 {
		img := image.NewNRGBA(image.Rect(0, 0, 16, 12))
		for j := 0; j < 12*16; j++ {
			copy(img.Pix[4*j:], set.Image(i)[3*j:3*j+3])
			img.Pix[4*j+3] = 255
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		one := filepath.Join(dir, "one.png")
		os.WriteFile(one, buf.Bytes(), 0o644)
		top := infer.Argmax(y[3*i : 3*i+3])
		code, out, errs := runMain("run", "-k", "1", qm, one)
		want := fmt.Sprintf("%s %.4f", m.Labels[top], y[3*i+top])
		if code != 0 || !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Fatalf("run image %d: code %d, want %q in\n%s\n%s", i, code, want, out, errs)
		}
	}
	// The QDQ ONNX carries the normalisation too, and imports back with it.
	if code, out, errs := runMain("export", "-format", "onnx", "-data", imgs, "-calib-batches", "1", "-parity", "0", "-o", qdq, ckpt); code != 0 {
		t.Fatalf("export -format onnx: code %d\n%s\n%s", code, out, errs)
	}
	back, err := onnx.ReadFile(qdq)
	if err != nil {
		t.Fatal(err)
	}
	props := map[string]string{}
	for _, kv := range back.GetMetadataProps() {
		props[kv.GetKey()] = kv.GetValue()
	}
	if props[preprocess.MetaMean] != "0.5,0.4,0.3" || props[preprocess.MetaStd] != "0.25,0.2,0.3" {
		t.Fatalf("QDQ metadata_props %v", props)
	}
	// -mean/-std override the file; a bad value, or -uint8 with a normalisation, is refused.
	if code, _, errs := runMain("import", in, "-o", ckpt, "-std", "0.5,0"); code == 0 || !strings.Contains(errs, "std") {
		t.Fatalf("import -std 0.5,0: code %d, %s", code, errs)
	}
	if code, _, errs := runMain("export", "-data", imgs, "-uint8", "-calib-batches", "1", "-o", qm, ckpt); code == 0 || !strings.Contains(errs, "uint8") {
		t.Fatalf("export -uint8 with a normalisation: code %d, %s", code, errs)
	}
	if code, out, errs := runMain("import", in, "-o", ckpt, "-mean", "0", "-std", "1"); code != 0 {
		t.Fatalf("import -mean 0 -std 1: code %d\n%s\n%s", code, out, errs)
	}
	if ck, err := graph.LoadCheckpoint(ckpt); err != nil || ck.Meta[preprocess.MetaMean] != "" {
		t.Fatalf("identity normalisation recorded: %v %v", ck.Meta, err)
	}
}
