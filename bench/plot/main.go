// Command plot draws the graph of a bench/sweep CSV: one panel per sysbench test, client threads on a
// log2 axis, queries per second up, one line per target (median over the repetitions that succeeded),
// a cross on the axis where a target's every run at a thread count failed, and a ring around points
// during which other processes kept the host busy.
//
// It only reads the CSV and writes a PNG; it never runs a benchmark and never edits the CSV.
package main

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// run is one CSV row, reduced to what the graph shows.
type run struct {
	Test    string
	Threads int
	Target  string
	QPS     float64
	OK      bool
	// OtherCPU is how busy the host was with other processes during the run, in %; NaN if unknown.
	OtherCPU float64
}

// readRuns reads a sweep CSV by column name, so added columns do not break older graphs.
func readRuns(r io.Reader) ([]run, error) {
	cr := csv.NewReader(r)
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("reading CSV header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, need := range []string{"test", "threads", "target", "qps", "status"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("CSV has no %q column (header %v)", need, header)
		}
	}
	var runs []run
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return runs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("CSV line %d: %w", line, err)
		}
		th, err := strconv.Atoi(rec[col["threads"]])
		if err != nil || th < 1 {
			return nil, fmt.Errorf("CSV line %d: bad threads %q", line, rec[col["threads"]])
		}
		ru := run{Test: rec[col["test"]], Threads: th, Target: rec[col["target"]], OK: rec[col["status"]] == "ok", OtherCPU: math.NaN()}
		if i, ok := col["other_cpu_pct"]; ok && rec[i] != "" {
			if ru.OtherCPU, err = strconv.ParseFloat(rec[i], 64); err != nil {
				return nil, fmt.Errorf("CSV line %d: bad other_cpu_pct %q", line, rec[i])
			}
		}
		if ru.OK {
			if ru.QPS, err = strconv.ParseFloat(rec[col["qps"]], 64); err != nil {
				return nil, fmt.Errorf("CSV line %d: bad qps %q", line, rec[col["qps"]])
			}
		}
		runs = append(runs, ru)
	}
}

// curve is one target's line in one panel.
type curve struct {
	Target string
	Points plotter.XYs // threads, median QPS; thread counts with a successful run only
	Failed []int       // thread counts at which every run failed
	// OtherCPU is, per entry of Points, the median share of the host other processes used (NaN: unknown).
	OtherCPU []float64
}

// panel is one test's graph.
type panel struct {
	Test    string
	Threads []int
	Curves  []curve
}

// panels groups runs by test and target, in the order they first appear in the CSV (the sweep writes
// tests and targets in the order the user asked for them).
func panels(runs []run) []panel {
	var tests, targets []string
	type key struct {
		test, target string
		threads      int
	}
	qps := map[key][]float64{}
	other := map[key][]float64{}
	seen := map[key]bool{}
	threadSet := map[string]map[int]bool{}
	for _, r := range runs {
		if !slices.Contains(tests, r.Test) {
			tests = append(tests, r.Test)
			threadSet[r.Test] = map[int]bool{}
		}
		if !slices.Contains(targets, r.Target) {
			targets = append(targets, r.Target)
		}
		k := key{r.Test, r.Target, r.Threads}
		seen[k] = true
		threadSet[r.Test][r.Threads] = true
		if r.OK {
			qps[k] = append(qps[k], r.QPS)
			if !math.IsNaN(r.OtherCPU) {
				other[k] = append(other[k], r.OtherCPU)
			}
		}
	}
	var out []panel
	for _, t := range tests {
		p := panel{Test: t}
		for th := range threadSet[t] {
			p.Threads = append(p.Threads, th)
		}
		sort.Ints(p.Threads)
		for _, tg := range targets {
			c := curve{Target: tg}
			for _, th := range p.Threads {
				k := key{t, tg, th}
				switch {
				case len(qps[k]) > 0:
					c.Points = append(c.Points, plotter.XY{X: float64(th), Y: median(qps[k])})
					o := math.NaN()
					if len(other[k]) > 0 {
						o = median(other[k])
					}
					c.OtherCPU = append(c.OtherCPU, o)
				case seen[k]:
					c.Failed = append(c.Failed, th)
				}
			}
			if len(c.Points) > 0 || len(c.Failed) > 0 {
				p.Curves = append(p.Curves, c)
			}
		}
		out = append(out, p)
	}
	return out
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// targetStyle gives each target the same colour in every graph; unknown targets get grey.
func targetStyle(target string) (color.Color, draw.GlyphDrawer) {
	switch target {
	case "direct":
		return color.RGBA{R: 0x20, G: 0x20, B: 0x20, A: 0xff}, draw.CircleGlyph{}
	case "proxy-epoll":
		return color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, draw.SquareGlyph{}
	case "proxy-uring":
		return color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, draw.TriangleGlyph{}
	case "haproxy":
		return color.RGBA{R: 0xd6, G: 0x60, B: 0x10, A: 0xff}, draw.PyramidGlyph{}
	case "proxy-epoll-scraped":
		// The same proxy as proxy-epoll with /metrics scraped every second: a lighter
		// shade of its colour, so the metrics-cost graph reads as one proxy twice.
		return color.RGBA{R: 0x8f, G: 0xbb, B: 0xe0, A: 0xff}, draw.SquareGlyph{}
	}
	return color.Gray{Y: 0x80}, draw.RingGlyph{}
}

// threadTicks labels every thread count measured, at its place on the log axis.
type threadTicks []int

func (t threadTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for _, th := range t {
		if v := float64(th); v >= lo && v <= hi {
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.Itoa(th)})
		}
	}
	return ticks
}

// qpsTicks labels the QPS axis in thousands, which stays readable up to millions.
type qpsTicks struct{}

func (qpsTicks) Ticks(lo, hi float64) []plot.Tick {
	step := niceStep((hi - lo) / 8)
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+step/1e6; v += step {
		label := "0"
		if v != 0 {
			label = strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: label})
	}
	return ticks
}

// niceStep rounds up to 1, 2 or 5 times a power of ten, so grid lines fall on round numbers.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			return m * pow
		}
	}
	return 10 * pow
}

func buildPlot(p panel, title string, disturbedPct float64) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = p.Test
	if title != "" {
		pl.Title.Text = p.Test + " — " + title
	}
	pl.X.Label.Text = "client threads (log2 scale)"
	pl.Y.Label.Text = "queries per second"
	pl.X.Scale = plot.LogScale{}
	pl.X.Tick.Marker = threadTicks(p.Threads)
	pl.Y.Tick.Marker = qpsTicks{}
	pl.Y.Min = 0
	if len(p.Threads) > 0 {
		// A little room either side so the end points are not drawn on the frame.
		pl.X.Min = float64(p.Threads[0]) / 1.3
		pl.X.Max = float64(p.Threads[len(p.Threads)-1]) * 1.3
	}
	pl.Add(plotter.NewGrid())
	pl.Legend.Top = true
	pl.Legend.Left = false
	pl.Legend.XOffs = -vg.Points(8)
	pl.Legend.YOffs = -vg.Points(4)
	maxY := 0.0
	for _, c := range p.Curves {
		col, glyph := targetStyle(c.Target)
		var thumbs []plot.Thumbnailer
		if len(c.Points) > 0 {
			line, points, err := plotter.NewLinePoints(c.Points)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", p.Test, c.Target, err)
			}
			line.Color, line.Width = col, vg.Points(2)
			points.Color, points.Shape, points.Radius = col, glyph, vg.Points(3.5)
			pl.Add(line, points)
			thumbs = append(thumbs, line, points)
			for _, xy := range c.Points {
				maxY = math.Max(maxY, xy.Y)
			}
		}
		name := c.Target
		if len(c.Failed) > 0 {
			var fxy plotter.XYs
			for _, th := range c.Failed {
				fxy = append(fxy, plotter.XY{X: float64(th), Y: 0})
			}
			s, err := plotter.NewScatter(fxy)
			if err != nil {
				return nil, fmt.Errorf("%s %s failures: %w", p.Test, c.Target, err)
			}
			s.Color, s.Shape, s.Radius = col, draw.CrossGlyph{}, vg.Points(6)
			pl.Add(s)
			if len(thumbs) == 0 {
				thumbs = append(thumbs, s)
			}
			name += " (× failed)"
		}
		pl.Legend.Add(name, thumbs...)
	}
	// Rings mark points during which other processes took a large share of the host: on a shared machine
	// those numbers say more about the neighbours than about the target.
	var disturbed plotter.XYs
	for _, c := range p.Curves {
		for i, o := range c.OtherCPU {
			if o > disturbedPct {
				disturbed = append(disturbed, c.Points[i])
			}
		}
	}
	if len(disturbed) > 0 {
		s, err := plotter.NewScatter(disturbed)
		if err != nil {
			return nil, fmt.Errorf("%s disturbed points: %w", p.Test, err)
		}
		s.Color, s.Shape, s.Radius = color.RGBA{R: 0xc0, G: 0x10, B: 0x10, A: 0xff}, draw.RingGlyph{}, vg.Points(7)
		pl.Add(s)
		pl.Legend.Add(fmt.Sprintf("other processes > %.0f%% of CPU", disturbedPct), s)
	}
	// Headroom above the highest point keeps the legend off the curves.
	pl.Y.Max = math.Max(maxY*1.25, 1000)
	return pl, nil
}

// render draws the panels side by side into a PNG.
func render(ps []panel, title string, disturbedPct float64, w io.Writer) error {
	if len(ps) == 0 {
		return errors.New("no data to plot")
	}
	plots := make([][]*plot.Plot, 1)
	for _, p := range ps {
		pl, err := buildPlot(p, title, disturbedPct)
		if err != nil {
			return err
		}
		plots[0] = append(plots[0], pl)
	}
	width := vg.Length(len(ps)) * 7 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(width, 5*vg.Inch), vgimg.UseDPI(110))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(ps), PadX: vg.Inch / 3, PadTop: vg.Inch / 8,
		PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 4}
	canvases := plot.Align(plots, tiles, dc)
	for i, pl := range plots[0] {
		pl.Draw(canvases[0][i])
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("encoding PNG: %w", err)
	}
	return nil
}

func main() {
	in := flag.String("in", "", "sweep CSV to read (required)")
	out := flag.String("out", "", "PNG to write (default: the CSV's name with .png)")
	title := flag.String("title", "", "text added to every panel's title")
	disturbed := flag.Float64("disturbed", 25, "ring points during which other processes used more than this % of the host's CPU")
	flag.Parse()
	if *in == "" {
		flag.Usage()
		os.Exit(2)
	}
	if *out == "" {
		*out = strings.TrimSuffix(*in, ".csv") + ".png"
	}
	if err := plotFile(*in, *out, *title, *disturbed); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
}

func plotFile(in, out, title string, disturbedPct float64) error {
	f, err := os.Open(in)
	if err != nil {
		return fmt.Errorf("opening CSV: %w", err)
	}
	defer f.Close()
	runs, err := readRuns(f)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	o, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("creating PNG: %w", err)
	}
	if err := render(panels(runs), title, disturbedPct, o); err != nil {
		o.Close()
		return err
	}
	if err := o.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}
