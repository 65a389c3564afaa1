package qat

import "testing"

// FakeQuantDelay keeps every fake-quantizer a pass-through until the step; ObserverFreeze freezes
// observers from its step on; BNFreeze rebuilds the training graph with running statistics.
func TestQATSchedules(t *testing.T) {
	train, _ := loadMNIST(t)
	sub := train.Subset(320) // 10 steps of 32
	for _, tc := range []struct {
		delay, freeze, bn int64
		enabled, frozen   bool
		bnFrozen          bool
	}{
		{delay: 1000, enabled: false},
		{delay: 4, freeze: 6, bn: 8, enabled: true, frozen: true, bnFrozen: true},
		{delay: 0, freeze: 0, bn: 0, enabled: true, frozen: false, bnFrozen: false},
	} {
		m := tinyModel(3)
		p, err := Prepare(m, W8A8())
		if err != nil {
			t.Fatal(err)
		}
		tr, err := NewTrainer(Classify(m, sub), p, Config{Epochs: 1, BatchSize: 32, Seed: 1, Logger: quiet(), CalibBatches: 1,
			FakeQuantDelay: tc.delay, ObserverFreeze: tc.freeze, BNFreeze: tc.bn})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Fit(nil); err != nil {
			t.Fatal(err)
		}
		if tr.train.freeze != tc.bnFrozen {
			t.Errorf("%+v: BN frozen %v", tc, tr.train.freeze)
		}
		for name, q := range tr.train.nq.Qs {
			if q.Enabled() != tc.enabled {
				t.Errorf("%+v: %s enabled %v", tc, name, q.Enabled())
			}
			if q.Frozen() != tc.frozen {
				t.Errorf("%+v: %s frozen %v", tc, name, q.Frozen())
			}
		}
		tr.Close()
	}
}
