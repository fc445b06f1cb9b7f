// Package bench holds Scale Stack's benchmark tools: load generators, the
// sysbench sweep driver and the plotting of results into bench/results/.
// It is its own module so that its heavy, benchmark-only dependencies
// (gnet for comparison, gonum/plot for graphs) stay out of the engine's
// go.mod. Nothing in the engine may import it.
package bench
