package main

import (
	"bytes"
	"image/png"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot/plotter"
)

const header = "test,threads,target,rep,qps,status,extra\n"

func TestReadRuns(t *testing.T) {
	tests := []struct {
		name    string
		csv     string
		want    int
		wantErr string
	}{
		{"ok and failed rows", header + "oltp_read_only,16,direct,1,100.5,ok,x\noltp_read_only,16,haproxy,1,,failed: boom,x\n", 2, ""},
		{"missing column", "test,threads,target\n", 0, `no "qps" column`},
		{"bad threads", header + "t,zero,direct,1,1,ok,x\n", 0, "bad threads"},
		{"bad qps on an ok row", header + "t,1,direct,1,fast,ok,x\n", 0, "bad qps"},
		{"bad other_cpu_pct", "test,threads,target,qps,status,other_cpu_pct\nt,1,direct,1,ok,busy\n", 0, "bad other_cpu_pct"},
		{"empty", "", 0, "header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runs, err := readRuns(strings.NewReader(tc.csv))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(runs) != tc.want {
				t.Fatalf("got %d runs, %v", len(runs), err)
			}
		})
	}
}

func TestPanels(t *testing.T) {
	nan := math.NaN()
	runs := []run{
		{"ro", 256, "direct", 300, true, 40},
		{"ro", 1, "direct", 100, true, 1},
		{"ro", 1, "direct", 140, true, 3},
		{"ro", 1, "direct", 120, true, nan},
		{"ro", 1, "haproxy", 90, true, nan},
		{"ro", 256, "haproxy", 0, false, 90},
		{"ps", 16, "haproxy", 50, true, nan},
	}
	ps := panels(runs)
	if len(ps) != 2 || ps[0].Test != "ro" || ps[1].Test != "ps" {
		t.Fatalf("panels = %+v", ps)
	}
	ro := ps[0]
	if len(ro.Threads) != 2 || ro.Threads[0] != 1 || ro.Threads[1] != 256 {
		t.Errorf("threads = %v, want sorted [1 256]", ro.Threads)
	}
	direct, hap := ro.Curves[0], ro.Curves[1]
	wantDirect := plotter.XYs{{X: 1, Y: 120}, {X: 256, Y: 300}}
	if direct.Target != "direct" || len(direct.Points) != 2 || direct.Points[0] != wantDirect[0] || direct.Points[1] != wantDirect[1] {
		t.Errorf("direct = %+v, want median points %v", direct, wantDirect)
	}
	if len(direct.OtherCPU) != 2 || direct.OtherCPU[0] != 2 || direct.OtherCPU[1] != 40 {
		t.Errorf("direct other CPU = %v, want medians [2 40] ignoring unknowns", direct.OtherCPU)
	}
	if hap.Target != "haproxy" || len(hap.Points) != 1 || len(hap.Failed) != 1 || hap.Failed[0] != 256 || !math.IsNaN(hap.OtherCPU[0]) {
		t.Errorf("haproxy = %+v, want one point and a failure at 256", hap)
	}
	if len(ps[1].Curves) != 1 {
		t.Errorf("a target absent from a test must not get a curve there: %+v", ps[1].Curves)
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct{ raw, want float64 }{{7, 10}, {1200, 2000}, {4100, 5000}, {0.3, 0.5}, {0, 1}} {
		if got := niceStep(tc.raw); got != tc.want {
			t.Errorf("niceStep(%v) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}

func TestRenderWritesAPNGPanelPerTest(t *testing.T) {
	runs := []run{{"ro", 1, "direct", 100, true, 0}, {"ro", 8192, "direct", 50, true, 80}, {"ps", 1, "direct", 10, true, 0}}
	var one, two bytes.Buffer
	if err := render(panels(runs[:2]), "", 25, &one); err != nil {
		t.Fatal(err)
	}
	if err := render(panels(runs), "t", 25, &two); err != nil {
		t.Fatal(err)
	}
	a, err := png.Decode(&one)
	if err != nil {
		t.Fatal(err)
	}
	b, err := png.Decode(&two)
	if err != nil {
		t.Fatal(err)
	}
	if b.Bounds().Dx() != 2*a.Bounds().Dx() || a.Bounds().Dy() != b.Bounds().Dy() {
		t.Errorf("one panel %v, two panels %v; want twice as wide, same height", a.Bounds(), b.Bounds())
	}
	if err := render(nil, "", 25, &one); err == nil {
		t.Error("rendering nothing succeeded")
	}
}

func TestPlotFile(t *testing.T) {
	if err := plotFile(filepath.Join(t.TempDir(), "missing.csv"), filepath.Join(t.TempDir(), "x.png"), "", 25); err == nil {
		t.Error("a missing CSV plotted")
	}
}

func FuzzReadRuns(f *testing.F) {
	f.Add(header + "ro,16,direct,1,100.5,ok,x\n")
	f.Add(header + "ro,16,direct,1,\"1\n2\",ok\n")
	f.Fuzz(func(t *testing.T, csv string) {
		runs, err := readRuns(strings.NewReader(csv))
		if err != nil {
			return
		}
		for _, r := range runs {
			if r.Threads < 1 {
				t.Fatalf("accepted threads %d", r.Threads)
			}
		}
		_ = panels(runs)
	})
}
