package loadgen

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PipelineFlags registers the pipeline benchmark's flags on fs and returns
// the options they fill once fs is parsed.
func PipelineFlags(fs *flag.FlagSet) *PipelineOptions {
	o := DefaultPipelineOptions()
	o.Username = envOr("YOLDA_BENCH_USER", o.Username)
	o.Password = envOr("YOLDA_BENCH_PASSWORD", o.Password)
	fs.StringVar(&o.BaseURL, "url", o.BaseURL, "base URL of the Yolda API")
	fs.Func("ops-urls", "comma-separated operations listeners (host:port or URL) of every process of the server (default 127.0.0.1:9090)", func(v string) error {
		urls, err := opsURLs(v)
		o.OpsURLs = urls
		return err
	})
	fs.StringVar(&o.Username, "username", o.Username, "customer account to log in as (env YOLDA_BENCH_USER)")
	fs.Var(secret{&o.Password}, "password", "password of that account (env YOLDA_BENCH_PASSWORD, else bench-password)")
	fs.Func("rates", "comma-separated ladder of intake rates, requests/s (default 1000,2000,3000,4000,5000,6000,8000,10000,12000)", func(v string) error {
		rates, err := parseRates(v)
		o.Rates = rates
		return err
	})
	fs.DurationVar(&o.Step, "step", o.Step, "length of each step's load (the issue asks for 60s or more; shorter for a smoke run)")
	fs.IntVar(&o.Bisect, "bisect", o.Bisect, "bisection steps between the last rate that held and the first that failed")
	fs.Float64Var(&o.Resolution, "resolution", o.Resolution, "stop bisecting when held and failed are this close (requests/s)")
	fs.IntVar(&o.MaxInFlight, "max-in-flight", o.MaxInFlight, "requests awaiting an answer at most; an arrival past it is missed")
	fs.Int64Var(&o.Seed, "seed", o.Seed, "seed of the random request bodies")
	fs.Func("insurers", "comma-separated insurer codes to draw from (default anadolu,axa,allianz)", func(v string) error {
		o.Insurers = splitList(v)
		if len(o.Insurers) == 0 {
			return errors.New("no insurer codes")
		}
		return nil
	})
	fs.Func("area", "where requests are: turkey (the default mix of provinces) or istanbul (where -drivers puts the drivers)", func(v string) error {
		switch v {
		case "turkey":
			o.Area = nil
		case "istanbul":
			a := Istanbul
			o.Area = &a
		default:
			return fmt.Errorf("unknown area %q (turkey or istanbul)", v)
		}
		return nil
	})
	fs.DurationVar(&o.MaxLagP99, "max-lag-p99", o.MaxLagP99, "a step holds while every consumer's lag p99 stays under this")
	fs.Float64Var(&o.MaxErrorRate, "max-error-rate", o.MaxErrorRate, "and the arrivals not accepted (missed, refused, lost) stay under this fraction")
	fs.Float64Var(&o.GrowthRatio, "growth-ratio", o.GrowthRatio, "and every backlog's last third stays under its first third x (1 + this) ...")
	fs.DurationVar(&o.GrowthSlack, "growth-slack", o.GrowthSlack, "... plus this long's worth of its own traffic (rows relayed, messages handled)")
	fs.DurationVar(&o.MaxFirstOfferP99, "max-first-offer-p99", o.MaxFirstOfferP99, "and, with -drivers, request commit to first offer p99 stays under this")
	fs.DurationVar(&o.SampleEvery, "sample", o.SampleEvery, "how often the backlog gauges are read during a step")
	fs.DurationVar(&o.Settle, "settle", o.Settle, "least wait after each step for its work to drain")
	fs.DurationVar(&o.SettleTimeout, "settle-timeout", o.SettleTimeout, "a step whose backlog has not drained by then fails and ends the search")
	fs.Func("server-pids", "comma-separated pids of the server's processes (CPU, RSS, PSS from /proc)", func(v string) error {
		pids, err := parsePIDs(v)
		o.ServerPIDs = pids
		return err
	})
	fs.IntVar(&o.PostgresPID, "postgres-pid", 0, "pid of PostgreSQL's postmaster: its CPU and PSS, with every backend's, are reported too")
	fs.IntVar(&o.OfferSample, "offer-sample", o.OfferSample, "requests per step whose first offer is looked up (with -drivers)")
	fs.DurationVar(&o.Warmup, "warmup", 10*time.Second, "load at half the first rate before the first step, not measured (then ANALYZE on PostgreSQL)")
	fs.Func("pprof-urls", "comma-separated pprof listeners (host:port or URL) of the server's processes, for -profile-dir", func(v string) error {
		for _, u := range splitList(v) {
			if !strings.Contains(u, "://") {
				u = "http://" + u
			}
			o.PprofURLs = append(o.PprofURLs, u)
		}
		return nil
	})
	fs.StringVar(&o.ProfileDir, "profile-dir", "", "write a CPU profile of each -pprof-urls process over the middle third of every step here")
	fs.StringVar(&o.Label, "label", "", "name of the configuration in the summary table")
	return &o
}

func splitList(v string) []string {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func opsURLs(v string) ([]string, error) {
	var out []string
	for _, s := range splitList(v) {
		if !strings.Contains(s, "://") {
			s = "http://" + s
		}
		if !strings.HasSuffix(s, "/metrics") {
			s = strings.TrimRight(s, "/") + "/metrics"
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("no operations listener")
	}
	return out, nil
}

func parseRates(v string) ([]float64, error) {
	var out []float64
	for _, s := range splitList(v) {
		r, err := strconv.ParseFloat(strings.TrimSuffix(strings.ToLower(s), "k"), 64)
		if err != nil {
			return nil, fmt.Errorf("rate %q: %w", s, err)
		}
		if strings.HasSuffix(strings.ToLower(s), "k") {
			r *= 1000
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errors.New("no rates")
	}
	return out, nil
}

func parsePIDs(v string) ([]int, error) {
	var out []int
	for _, s := range splitList(v) {
		pid, err := strconv.Atoi(s)
		if err != nil || pid < 1 {
			return nil, fmt.Errorf("pid %q: not a process id", s)
		}
		out = append(out, pid)
	}
	return out, nil
}
