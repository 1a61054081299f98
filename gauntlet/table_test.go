package gauntlet

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// row is one line of the gauntlet table.
type row struct {
	ID      string // scenario number ("1".."8")
	Name    string
	Result  string // PASS, FAIL, SKIP
	Recover string // time to recover, "-" when not applicable
	Lost    string // what was lost, "nothing" when nothing
	Note    string // measurements, or the reason of a failure or skip

	mu sync.Mutex
}

var table struct {
	mu   sync.Mutex
	rows []*row
}

// scenario registers the row of the running test. Its result is decided
// when the test ends (the first Cleanup registered runs last, after the
// private containerd is torn down), so a failure anywhere marks it FAIL.
func scenario(t *testing.T, id, name string) *row {
	r := &row{ID: id, Name: name, Recover: "-", Lost: "-"}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		switch {
		case t.Skipped():
			r.Result = "SKIP"
		case t.Failed():
			r.Result = "FAIL"
		default:
			r.Result = "PASS"
		}
		table.mu.Lock()
		table.rows = append(table.rows, r)
		table.mu.Unlock()
	})
	return r
}

func (r *row) recovered(d time.Duration) {
	r.mu.Lock()
	r.Recover = d.Round(time.Millisecond).String()
	r.mu.Unlock()
}

func (r *row) lost(s string) {
	r.mu.Lock()
	r.Lost = s
	r.mu.Unlock()
}

// note appends a measurement or a reason to the row.
func (r *row) note(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := fmt.Sprintf(format, a...)
	if r.Note == "" {
		r.Note = s
	} else {
		r.Note += "; " + s
	}
}

// fail records the reason in the row and fails the test.
func (r *row) fail(t *testing.T, format string, a ...any) {
	t.Helper()
	r.note("FAILED: "+format, a...)
	t.Fatalf(format, a...)
}

// errorf records the reason in the row and marks the test failed, going on.
func (r *row) errorf(t *testing.T, format string, a ...any) {
	t.Helper()
	r.note("FAILED: "+format, a...)
	t.Errorf(format, a...)
}

// skipLong skips a long scenario unless GAUNTLET_LONG=1.
func (r *row) skipLong(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("GAUNTLET_LONG") == "1" {
		return
	}
	r.note("long scenario (%s): run `make gauntlet` or GAUNTLET_LONG=1 go test ./gauntlet/", what)
	t.Skipf("long scenario (%s): set GAUNTLET_LONG=1 (make gauntlet) to run it", what)
}

func clean(s string) string {
	return strings.NewReplacer("\t", " ", "\n", " ").Replace(s)
}

// writeTable prints the rows as an aligned table to w.
func writeTable(w io.Writer, rows []*row) {
	sort.SliceStable(rows, func(i, j int) bool { return idLess(rows[i].ID, rows[j].ID) })
	lines := [][]string{{"#", "scenario", "result", "recover", "lost", "notes"}}
	for _, r := range rows {
		lines = append(lines, []string{r.ID, r.Name, r.Result, r.Recover, clean(r.Lost), clean(r.Note)})
	}
	widths := make([]int, 5)
	for _, l := range lines {
		for i := 0; i < 5; i++ {
			widths[i] = max(widths[i], len(l[i]))
		}
	}
	for _, l := range lines {
		for i := 0; i < 5; i++ {
			fmt.Fprintf(w, "%-*s  ", widths[i], l[i])
		}
		fmt.Fprintln(w, l[5])
	}
}

// idLess orders row IDs as version numbers ("5" < "10" < "11.2" < "11.13"),
// as the script's sort -V does, so the table reads in the README's order.
func idLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, errx := strconv.Atoi(as[i])
		y, erry := strconv.Atoi(bs[i])
		if errx != nil || erry != nil {
			if as[i] != bs[i] {
				return as[i] < bs[i]
			}
			continue
		}
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}

// saveTable writes the rows as tab-separated lines to $GAUNTLET_ROWS (the
// script merges them with the fuzzing rows), or the aligned table to
// build/gauntlet-table.txt otherwise.
func saveTable(rows []*row) {
	if p := os.Getenv("GAUNTLET_ROWS"); p != "" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gauntlet: GAUNTLET_ROWS %s: %v\n", p, err)
			return
		}
		defer f.Close()
		for _, r := range rows {
			fmt.Fprintf(f, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, r.Result, r.Recover, clean(r.Lost), clean(r.Note))
		}
		return
	}
	dir := filepath.Join("..", "build")
	if os.MkdirAll(dir, 0o755) != nil {
		return
	}
	f, err := os.Create(filepath.Join(dir, "gauntlet-table.txt"))
	if err != nil {
		return
	}
	defer f.Close()
	writeTable(f, rows)
}

func TestIDLessNumeric(t *testing.T) {
	ids := []string{"11.13", "10", "5", "11.2", "11", "9", "11.1"}
	sort.SliceStable(ids, func(i, j int) bool { return idLess(ids[i], ids[j]) })
	if got, want := strings.Join(ids, " "), "5 9 10 11 11.1 11.2 11.13"; got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
}
