package flagcheck

import (
	"errors"
	"math"
	"testing"
)

func TestChecks(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want string // "" for nil
	}{
		{"at least ok", AtLeast("epochs", 0, 0), ""},
		{"at least bad", AtLeast("epochs", -1, 0), "-epochs must be >= 0, got -1"},
		{"between ok low", Between("batch", 1, 1, 4), ""},
		{"between ok high", Between("batch", 4, 1, 4), ""},
		{"between low", Between("batch", 0, 1, 4), "-batch must be in [1,4], got 0"},
		{"between high", Between("batch", 5, 1, 4), "-batch must be in [1,4], got 5"},
		{"positive ok", Positive("lr", 1e-9), ""},
		{"positive zero", Positive("lr", 0), "-lr must be a finite number > 0, got 0"},
		{"positive negative", Positive("lr", -1), "-lr must be a finite number > 0, got -1"},
		{"positive NaN", Positive("lr", math.NaN()), "-lr must be a finite number > 0, got NaN"},
		{"positive Inf", Positive("lr", math.Inf(1)), "-lr must be a finite number > 0, got +Inf"},
		{"non-negative zero", NonNegative("wd", 0), ""},
		{"non-negative bad", NonNegative("wd", -0.5), "-wd must be a finite number >= 0, got -0.5"},
		{"non-negative NaN", NonNegative("wd", math.NaN()), "-wd must be a finite number >= 0, got NaN"},
		{"non-negative Inf", NonNegative("wd", math.Inf(1)), "-wd must be a finite number >= 0, got +Inf"},
		{"within ok", Within("alpha", 1, 0, 1), ""},
		{"within high", Within("alpha", 1.5, 0, 1), "-alpha must be in [0,1], got 1.5"},
		{"within NaN", Within("alpha", math.NaN(), 0, 1), "-alpha must be in [0,1], got NaN"},
		{"not empty ok", NotEmpty("o", "x"), ""},
		{"not empty bad", NotEmpty("o", ""), "-o must not be empty"},
		{"no args ok", NoArgs(nil), ""},
		{"no args bad", NoArgs([]string{"epochs"}), `unexpected arguments ["epochs"] (this command takes flags only)`},
		{"first nil", First(nil, nil), ""},
		{"first", First(nil, errors.New("a"), errors.New("b")), "a"},
	} {
		got := ""
		if c.err != nil {
			got = c.err.Error()
		}
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
