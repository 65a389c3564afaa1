package qat

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/quant"
)

func siteByName(t *testing.T, m *graph.Model, name string) graph.Site {
	t.Helper()
	for _, s := range m.Sites() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no site %q", name)
	return graph.Site{}
}

// Each Spec option reaches the fakequant.Config of its site.
func TestSpecOptionsReachFakequant(t *testing.T) {
	m := tinyModel(1) // fc.weight is [10, 392], conv.weight [8, 1, 3, 3]
	obs := func(s Spec) QConfig {
		return QConfig{Name: "t", Weight: Spec{Bits: 8, Method: fakequant.Observed, Momentum: 1}, Act: s}
	}
	wt := func(s Spec) QConfig {
		return QConfig{Name: "t", Weight: s, Act: Spec{Bits: 8, Method: fakequant.Observed}}
	}
	cases := []struct {
		name string
		c    QConfig
		site string
		want fakequant.Config
	}{
		{"default weight", W8A8(), "fc.weight", fakequant.Config{Name: "fc.weight", Bits: 8, Method: fakequant.Observed, Momentum: 1,
			Scheme: fakequant.SymmetricNarrow, Granularity: fakequant.PerChannel, Axis: 0}},
		{"default act", W4A4LSQ(), "conv.out", fakequant.Config{Name: "conv.out", Bits: 4, Method: fakequant.LSQ,
			Scheme: fakequant.AsymmetricSigned, LearnOffset: true}},
		{"asymmetric weight", wt(Spec{Bits: 4, Method: fakequant.LSQ, Scheme: SchemeAsymmetric, LearnOffset: true}), "fc.weight",
			fakequant.Config{Name: "fc.weight", Bits: 4, Method: fakequant.LSQ, Scheme: fakequant.AsymmetricSigned,
				Granularity: fakequant.PerChannel, LearnOffset: true}},
		{"unsigned weight per-tensor", wt(Spec{Bits: 8, Method: fakequant.Observed, Scheme: SchemeUnsigned, PerTensor: true}), "fc.weight",
			fakequant.Config{Name: "fc.weight", Bits: 8, Method: fakequant.Observed, Scheme: fakequant.AsymmetricUnsigned}},
		{"per-group weight", wt(Spec{Bits: 4, Method: fakequant.LSQ, GroupSize: 8}), "fc.weight",
			fakequant.Config{Name: "fc.weight", Bits: 4, Method: fakequant.LSQ, Scheme: fakequant.SymmetricNarrow,
				Granularity: fakequant.PerGroup, Axis: 1, GroupSize: 8}},
		{"symmetric act", obs(Spec{Bits: 8, Method: fakequant.Observed, Scheme: SchemeSymmetric}), "input",
			fakequant.Config{Name: "input", Bits: 8, Method: fakequant.Observed, Scheme: fakequant.SymmetricNarrow}},
		{"unsigned act", obs(Spec{Bits: 8, Method: fakequant.LSQ, Scheme: SchemeUnsigned, LearnOffset: true}), "conv.out",
			fakequant.Config{Name: "conv.out", Bits: 8, Method: fakequant.LSQ, Scheme: fakequant.AsymmetricUnsigned, LearnOffset: true}},
		{"PACT unsigned", obs(Spec{Bits: 4, Method: fakequant.PACT, Scheme: SchemeUnsigned}), "conv.out",
			fakequant.Config{Name: "conv.out", Bits: 4, Method: fakequant.PACT, Scheme: fakequant.AsymmetricUnsigned}},
		{"EMA act", obs(Spec{Bits: 8, Method: fakequant.Observed, Observer: ObserverEMA, Momentum: 0.05}), "input",
			fakequant.Config{Name: "input", Bits: 8, Method: fakequant.Observed, Scheme: fakequant.AsymmetricSigned, Momentum: 0.05}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fc, on, err := tc.c.fqConfig(m, siteByName(t, m, tc.site))
			if err != nil || !on {
				t.Fatalf("on=%v err=%v", on, err)
			}
			if fc != tc.want {
				t.Errorf("got  %+v\nwant %+v", fc, tc.want)
			}
		})
	}
}

// The options shape the quantizers Prepare builds: slice counts and integer ranges.
func TestSpecOptionsQuantizerState(t *testing.T) {
	m := tinyModel(2)
	c := QConfig{Name: "t", Weight: Spec{Bits: 8, Method: fakequant.Observed, Momentum: 1},
		Act: Spec{Bits: 4, Method: fakequant.Observed, Scheme: SchemeUnsigned}}
	g := Spec{Bits: 4, Method: fakequant.Observed, Momentum: 1, GroupSize: 8}
	c = c.With("fc", Override{Weight: &g})
	p, err := Prepare(m, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runObservers(p, randomSet{n: 32}, 1, 16, 1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		site   string
		slices int
		rng    quant.Range
	}{
		{"fc.weight", 10 * 392 / 8, quant.NarrowSigned(4)},
		{"conv.weight", 8, quant.NarrowSigned(8)},
		{"input", 1, quant.Unsigned(4)},
		{"conv.out", 1, quant.Unsigned(4)},
	} {
		sp, err := p.Params(tc.site)
		if err != nil {
			t.Fatal(err)
		}
		if len(sp.Params) != tc.slices || sp.Range != tc.rng {
			t.Errorf("%s: %d params range %v, want %d %v", tc.site, len(sp.Params), sp.Range, tc.slices, tc.rng)
		}
	}
	// group 0 of output channel 3 uses the max |w| of fc.weight[3, 0:8]
	w := m.LayerParam("fc", graph.RoleWeight).Value.Data().([]float32)
	mx := 0.0
	for _, v := range w[3*392 : 3*392+8] {
		mx = math.Max(mx, math.Abs(float64(v)))
	}
	sp, _ := p.Params("fc.weight")
	if got, want := float64(sp.Params[3*392/8].Scale), mx/7; math.Abs(got-want) > 1e-6*want {
		t.Errorf("fc.weight group (3,0) scale %v, want max|w|/7 = %v", got, want)
	}
}

// Combinations fakequant rejects, or that make no sense at a site, are errors from Prepare.
func TestSpecOptionErrors(t *testing.T) {
	m := tinyModel(1)
	base := W8A8()
	cases := []struct {
		name   string
		mod    func(c *QConfig)
		errHas string
	}{
		{"group does not divide input", func(c *QConfig) { g := c.Weight; g.GroupSize = 5; *c = c.With("fc", Override{Weight: &g}) }, "does not divide the input size 392"},
		{"group on activations", func(c *QConfig) { c.Act.GroupSize = 4 }, "weights only"},
		{"group with per-tensor", func(c *QConfig) { c.Weight.GroupSize, c.Weight.PerTensor = 1, true }, "exclude"},
		{"negative group", func(c *QConfig) { c.Weight.GroupSize = -1 }, "GroupSize"},
		{"learned offset symmetric", func(c *QConfig) {
			c.Act = Spec{Bits: 8, Method: fakequant.LSQ, Scheme: SchemeSymmetric, LearnOffset: true}
		}, "asymmetric"},
		{"PACT asymmetric signed", func(c *QConfig) { c.Act = Spec{Bits: 4, Method: fakequant.PACT, Scheme: SchemeAsymmetric} }, "PACT"},
		{"PACT symmetric", func(c *QConfig) { c.Act = Spec{Bits: 4, Method: fakequant.PACT, Scheme: SchemeSymmetric} }, "PACT"},
		{"unknown scheme", func(c *QConfig) { c.Act.Scheme = 9 }, "Scheme(9)"},
		{"unknown observer", func(c *QConfig) { c.Act.Observer = 9 }, "Observer(9)"},
		{"EMA without momentum", func(c *QConfig) { c.Act.Observer, c.Act.Momentum = ObserverEMA, 0 }, "Momentum"},
		{"EMA momentum 1", func(c *QConfig) { c.Act.Observer, c.Act.Momentum = ObserverEMA, 1 }, "Momentum"},
		{"percentile 50", func(c *QConfig) { c.Act.Observer, c.Act.Percentile = ObserverPercentile, 50 }, "outside"},
		{"percentile 101", func(c *QConfig) { c.Act.Observer, c.Act.Percentile = ObserverPercentile, 101 }, "outside"},
		{"percentile NaN", func(c *QConfig) { c.Act.Observer, c.Act.Percentile = ObserverPercentile, math.NaN() }, "NaN"},
		{"percentile without observer", func(c *QConfig) { c.Act.Percentile = 99 }, "without"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			_, err := Prepare(m, c)
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("Prepare error %v, want one containing %q", err, tc.errHas)
			}
		})
	}
	// valid edge cases: the default percentile, percentile 100, group size = input size
	ok := base
	ok.Act.Observer = ObserverPercentile
	g := ok.Weight
	g.GroupSize = 392
	p100 := ok.Act
	p100.Percentile = 100
	ok = ok.With("fc", Override{Weight: &g, Act: &p100})
	if _, err := Prepare(m, ok); err != nil {
		t.Error(err)
	}
	// BiasOn cannot simulate a per-channel bias scale with per-group weights
	bo := base
	bo.BiasQuant = BiasOn
	bo = bo.With("fc", Override{Weight: &g})
	p, err := Prepare(m, bo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runObservers(p, randomSet{n: 16}, 1, 16, 1); err == nil || !strings.Contains(err.Error(), "BiasOn") {
		t.Errorf("BiasOn with per-group weights: %v", err)
	}
}

func TestSpecOptionsJSON(t *testing.T) {
	c := W4A4LSQ()
	c.Weight.GroupSize = 8
	c.Weight.Observer = ObserverMSE
	c.Act.Scheme = SchemeUnsigned
	c.Act.Observer, c.Act.Percentile = ObserverPercentile, 99.9
	e := Spec{Bits: 8, Method: fakequant.Observed, Momentum: 0.1, Observer: ObserverEMA, Scheme: SchemeSymmetric}
	a := Spec{Bits: 4, Method: fakequant.LSQ, Scheme: SchemeAsymmetric}
	c = c.With("fc", Override{Weight: &a, Act: &e})
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"scheme":"unsigned"`, `"observer":"percentile"`, `"percentile":99.9`, `"group_size":8`, `"observer":"mse"`, `"scheme":"symmetric"`, `"observer":"ema"`, `"scheme":"asymmetric"`} {
		if !strings.Contains(string(j), s) {
			t.Errorf("JSON %s lacks %s", j, s)
		}
	}
	back, err := ParseQConfig(j)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip\n got %+v\nwant %+v", back, c)
	}
	// "minmax" is accepted for the default observer
	mm, err := ParseQConfig([]byte(`{"name":"x","weight":{"bits":8,"method":"observed","observer":"minmax"},"act":{"bits":8,"method":"observed"}}`))
	if err != nil || mm.Weight.Observer != ObserverMinMax {
		t.Errorf("observer minmax: %+v %v", mm.Weight, err)
	}
	// presets carry none of the new keys
	for _, p := range []QConfig{W8A8(), W4A8LSQ(), W4A4LSQ(), W2A2(), W4A4Observed()} {
		j, _ := json.Marshal(p)
		for _, k := range []string{"scheme", "group_size", "observer", "percentile"} {
			if strings.Contains(string(j), k) {
				t.Errorf("%s JSON %s has %q", p.Name, j, k)
			}
		}
	}
	for _, bad := range []string{
		`{"name":"x","weight":{"bits":8,"method":"observed","scheme":"sym"},"act":{"bits":8,"method":"observed"}}`,
		`{"name":"x","weight":{"bits":8,"method":"observed"},"act":{"bits":8,"method":"observed","observer":"kl"}}`,
	} {
		if _, err := ParseQConfig([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// outlierSet: pixels uniform in [-1, 1], and in every 8th image one pixel at 20.
type outlierSet struct{ n int }

func (o outlierSet) Len() int { return o.n }
func (o outlierSet) Batch(idx []int, x []float32, y []int) {
	per := len(x) / len(idx)
	for k, i := range idx {
		r := rand.New(rand.NewPCG(uint64(i), 7))
		xs := x[k*per : (k+1)*per]
		for j := range xs {
			xs[j] = 2*r.Float32() - 1
		}
		if i%8 == 0 {
			xs[r.IntN(per)] = 20
		}
		y[k] = i % 10
	}
}

// On data with rare outliers the percentile and MSE observers calibrate a smaller input range
// (scale) than min/max; the percentile range matches a direct computation on the same data.
func TestCalibrateObserversWithOutliers(t *testing.T) {
	m := tinyModel(4)
	data := outlierSet{n: 64}
	calib := func(o Observer, pct float64) (lo, hi float64, scale float32) {
		c := W4A4Observed()
		c.Act.Observer, c.Act.Percentile = o, pct
		p, err := Calibrate(m, c, data, 2, 32, 1)
		if err != nil {
			t.Fatal(err)
		}
		st := p.state[graph.InputName]
		rlo, rhi, ok := st.fq.Observed()
		if !ok || !st.fq.Frozen() {
			t.Fatalf("%v: input site not calibrated/frozen", o)
		}
		sp, err := p.Params(graph.InputName)
		if err != nil {
			t.Fatal(err)
		}
		return rlo[0], rhi[0], sp.Params[0].Scale
	}
	_, mmHi, mmScale := calib(ObserverMinMax, 0)
	if mmHi != 20 {
		t.Fatalf("min/max hi %v, want the outlier 20", mmHi)
	}
	pLo, pHi, pScale := calib(ObserverPercentile, 99.9)
	_, eHi, eScale := calib(ObserverMSE, 0)
	t.Logf("input scale: minmax %v, percentile %v (hi %v), mse %v (hi %v)", mmScale, pScale, pHi, eScale, eHi)
	if !(pScale < mmScale/2 && eScale < mmScale) {
		t.Errorf("scales minmax %v percentile %v mse %v: want percentile and MSE smaller", mmScale, pScale, eScale)
	}
	// independent percentile of all 64 images (2 batches of 32 cover the set once; 50176 values, no subsampling)
	x := make([]float32, 64*784)
	idx := make([]int, 64)
	for i := range idx {
		idx[i] = i
	}
	data.Batch(idx, x, make([]int, 64))
	v := make([]float64, len(x))
	for i, f := range x {
		v[i] = float64(f)
	}
	slices.Sort(v)
	q := func(p float64) float64 {
		pos := p * float64(len(v)-1)
		i := int(pos)
		return v[i] + (pos-float64(i))*(v[i+1]-v[i])
	}
	if math.Abs(pHi-q(0.999)) > 1e-9 || math.Abs(pLo-q(0.001)) > 1e-9 {
		t.Errorf("percentile range [%v, %v], want [%v, %v]", pLo, pHi, q(0.001), q(0.999))
	}
}

// LSQ weight quantizers initialise from the spec's percentile observer instead of the LSQ rule.
func TestInitWeightPercentile(t *testing.T) {
	m := tinyModel(5)
	c := W4A4LSQ()
	c.Weight.Observer, c.Weight.Percentile = ObserverPercentile, 90
	p, err := Prepare(m, c)
	if err != nil {
		t.Fatal(err)
	}
	nq, err := runObservers(p, randomSet{n: 16}, 1, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.initLSQ(nq, nil); err != nil {
		t.Fatal(err)
	}
	sp, err := p.Params("fc.weight")
	if err != nil {
		t.Fatal(err)
	}
	w := m.LayerParam("fc", graph.RoleWeight).Value.Data().([]float32)
	for ch := 0; ch < 10; ch++ {
		row := make([]float64, 392)
		for i := range row {
			row[i] = float64(w[ch*392+i])
		}
		slices.Sort(row)
		q := func(p float64) float64 {
			pos := p * 391
			i := int(pos)
			return row[i] + (pos-float64(i))*(row[i+1]-row[i])
		}
		want := math.Max(math.Abs(q(0.1)), math.Abs(q(0.9))) / 7
		if got := float64(sp.Params[ch].Scale); math.Abs(got-want) > 1e-5*want {
			t.Errorf("channel %d: scale %v, want %v (90th percentile / 7)", ch, got, want)
		}
	}
}
