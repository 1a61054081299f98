// Command bench-logd measures how soon a logging binary tells containerd's
// shim it is ready: the time from its exec to the ready byte (and close)
// on fd 5, as the shim sees it, on the path of every `oxios start`. It
// runs two binaries round by round and prints the medians and their ratio.
//
//	go run ./bench/logd -a bin/oxios-logd -b /tmp/oxios-logd.old -runs 300
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

func main() {
	a := flag.String("a", "bin/oxios-logd", "first logging binary")
	b := flag.String("b", "", "second logging binary (optional)")
	runs := flag.Int("runs", 300, "rounds")
	flag.Parse()
	bins := []string{*a}
	if *b != "" {
		bins = append(bins, *b)
	}
	dir, err := os.MkdirTemp("", "bench-logd")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	times := make([][]time.Duration, len(bins))
	for r := 0; r < *runs; r++ {
		for i, bin := range bins {
			d, err := once(bin, filepath.Join(dir, fmt.Sprintf("%d.log", i)))
			if err != nil {
				fail(fmt.Errorf("%s: %w", bin, err))
			}
			times[i] = append(times[i], d)
		}
	}
	med := make([]time.Duration, len(bins))
	for i, bin := range bins {
		slices.Sort(times[i])
		med[i] = times[i][len(times[i])/2]
		fmt.Printf("%-40s ready after exec: median %v, p90 %v (%d runs)\n", bin, med[i].Round(time.Microsecond), times[i][len(times[i])*9/10].Round(time.Microsecond), *runs)
	}
	if len(bins) == 2 {
		fmt.Printf("ratio a/b: %.2fx\n", float64(med[0])/float64(med[1]))
	}
}

// once starts bin as the shim does (streams on fds 3 and 4, the ready
// pipe on 5, file= in the arguments) and returns the time until fd 5
// reports ready (a byte or EOF); then it closes the streams and waits.
func once(bin, log string) (time.Duration, error) {
	var files [3][2]*os.File
	for i := range files {
		r, w, err := os.Pipe()
		if err != nil {
			return 0, err
		}
		files[i] = [2]*os.File{r, w}
	}
	cmd := exec.Command(bin, "file", log)
	// The driver reads the streams' read ends and writes the ready pipe.
	cmd.ExtraFiles = []*os.File{files[0][0], files[1][0], files[2][1]}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	files[0][0].Close()
	files[1][0].Close()
	files[2][1].Close()
	io.ReadFull(files[2][0], make([]byte, 1)) // a byte, or EOF from the close
	d := time.Since(t0)
	files[2][0].Close()
	files[0][1].Close()
	files[1][1].Close()
	return d, cmd.Wait()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench-logd:", err)
	os.Exit(1)
}
