//go:build linux

package health

import (
	"os"
	"testing"
	"time"
)

// tickPacer is a scripted prober paced by a real pollTicker, as a gated
// probe's long waits are.
type tickPacer struct {
	*scripted
	tick *pollTicker
}

func (p tickPacer) pace() (time.Duration, <-chan struct{}) {
	p.tick.arm(time.Millisecond)
	return tickPaced, p.tick.C
}

// Before the startup budget's end a ticker paces the retries; after it
// the period grid does: ticks are a poll's, not events that end a wait.
func TestTickerPacesOnlyWithinBudget(t *testing.T) {
	tk := newPollTicker()
	if tk == nil {
		t.Fatal("no timerfd")
	}
	defer tk.Close()
	cfg := DefaultConfig()
	period := 100 * time.Millisecond
	cfg.Readiness = pc(period, 1, 1) // budget: one period
	h := newHarness(t, cfg, [numKinds]func(int, time.Duration) Result{kindReadiness: always(Failure)})
	r := h.m.runners[kindReadiness]
	p := tickPacer{scripted: h.probers[kindReadiness], tick: tk}
	r.prober = p
	h.m.ChildStarted(os.Getpid())
	time.Sleep(period + 5*period) // the budget, then five periods: no event marks their end
	calls := p.times()
	if len(calls) < 2 {
		t.Fatalf("%d probes", len(calls))
	}
	var within, after int
	for _, c := range calls {
		if c.Sub(calls[0]) < period {
			within++
		} else {
			after++
		}
	}
	if within < 10 {
		t.Errorf("%d probes within the budget, paced every 1 ms: the ticker did not pace them", within)
	}
	if after > 7 {
		t.Errorf("%d probes in the five periods after the budget: the ticker still paced them", after)
	}
}
