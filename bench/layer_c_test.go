package bench

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// attackResult is one load phase, as the load generator saw it.
type attackResult struct {
	latencies []time.Duration
	ok, bad   int
	elapsed   time.Duration
}

func (a attackResult) throughput() float64 { return float64(a.ok) / a.elapsed.Seconds() }

// loadClient is the load generator's HTTP/1.1 keep-alive client for one server: a fixed pool of
// connections, opened before any measurement and reused by every phase, so no phase pays handshakes
// and an overloaded server cannot make the generator open ever more connections.
func loadClient(clientTLS *tls.Config, conns int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     clientTLS,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     5 * time.Minute,
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1, as the server
		},
	}
}

// attack posts body to url through c, open loop at rate per second, or closed loop with workers
// workers when rate is 0, for d. Only 127.0.0.1 is ever a target.
func attack(t *testing.T, c *http.Client, url string, body []byte, rate, workers int, d time.Duration) attackResult {
	t.Helper()
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("refusing to load %s: loopback only", url)
	}
	opts := []func(*vegeta.Attacker){vegeta.Client(c), vegeta.Workers(uint64(workers))}
	pacer := vegeta.Rate{Freq: rate, Per: time.Second}
	if rate == 0 {
		opts = append(opts, vegeta.MaxWorkers(uint64(workers)))
	} else {
		opts = append(opts, vegeta.MaxWorkers(5000)) // open loop: a late response never delays the next request
	}
	hdr := http.Header{"Content-Type": []string{"application/json"}}
	target := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodPost, URL: url, Body: body, Header: hdr})
	var res attackResult
	var first, last time.Time
	for r := range vegeta.NewAttacker(opts...).Attack(target, pacer, d, "") {
		if first.IsZero() || r.Timestamp.Before(first) {
			first = r.Timestamp
		}
		if r.End().After(last) {
			last = r.End()
		}
		if r.Code != http.StatusOK || r.Error != "" || !strings.Contains(string(r.Body), `"allowed":true`) {
			res.bad++
			if res.bad == 1 {
				t.Logf("%s: failed request: code %d, error %q, body %.200s", url, r.Code, r.Error, r.Body)
			}
			continue
		}
		res.ok++
		res.latencies = append(res.latencies, r.Latency)
	}
	res.elapsed = last.Sub(first)
	return res
}

// layerC: loopback HTTPS against a separate server process on one core, open-loop load from here.
func layerC(t *testing.T, r *report) {
	bin := buildServer(t)
	certDir, clientTLS := selfSigned(t)
	job8k, err := Load("job8k")
	if err != nil {
		t.Fatal(err)
	}
	body := Review(job8k)
	// One process per handler, so each one's memory is its own.
	servers := map[string]*benchServer{
		"noop":  startServer(t, bin, certDir, clientTLS),
		"kaiwo": startServer(t, bin, certDir, clientTLS),
	}
	paths := map[string]string{"noop": "/noop", "kaiwo": "/mutate"}
	order := []string{"noop", "kaiwo"}
	const conns = 16
	clients := map[string]*http.Client{}
	for _, h := range order {
		if got := servers[h].stats(t).GOMAXPROCS; got != 1 {
			t.Fatalf("%s server runs with GOMAXPROCS=%d, want 1", h, got)
		}
		clients[h] = loadClient(clientTLS, conns)
		// Warm up the server and open the whole pool.
		if w := attack(t, clients[h], servers[h].url(paths[h]), body, 0, conns, 2*time.Second); w.ok == 0 || w.bad > 0 {
			t.Fatalf("%s warm-up: %d ok, %d failed", h, w.ok, w.bad)
		}
	}
	base := map[string]serverStats{}
	for _, h := range order {
		base[h] = servers[h].stats(t)
	}

	const rounds = 2
	tput := map[string][]float64{}
	var tputRatios []float64
	lat := map[string]map[int][]time.Duration{"noop": {}, "kaiwo": {}}
	achieved := map[string]map[int][]float64{"noop": {}, "kaiwo": {}}
	failed := map[string]int{}
	for range rounds {
		cur := map[string]float64{}
		for _, h := range order {
			a := attack(t, clients[h], servers[h].url(paths[h]), body, 0, 8, 3*time.Second)
			failed[h] += a.bad
			cur[h] = a.throughput()
			tput[h] = append(tput[h], cur[h])
		}
		tputRatios = append(tputRatios, cur["kaiwo"]/cur["noop"])
		for _, rate := range []int{100, 500} {
			for _, h := range order {
				a := attack(t, clients[h], servers[h].url(paths[h]), body, rate, conns, 4*time.Second)
				failed[h] += a.bad
				lat[h][rate] = append(lat[h][rate], a.latencies...)
				achieved[h][rate] = append(achieved[h][rate], a.throughput())
			}
		}
	}
	end := map[string]serverStats{}
	mem := map[string][2]int64{}
	for _, h := range order {
		end[h] = servers[h].stats(t)
		hwm, rss := servers[h].memory(t)
		mem[h] = [2]int64{hwm, rss}
	}
	perReq := func(h string) float64 {
		return float64(end[h].TotalAlloc-base[h].TotalAlloc) / float64(end[h].Requests-base[h].Requests)
	}

	r.set("tls_throughput_vs_noop", median(tputRatios))
	p99 := func(h string, rate int) time.Duration { return percentile(lat[h][rate], 0.99) }
	p50 := func(h string, rate int) time.Duration { return percentile(lat[h][rate], 0.50) }
	r.set("p99_500rps_vs_noop", float64(p99("kaiwo", 500))/float64(p99("noop", 500)))
	r.set("bytes_per_job8k", perReq("kaiwo"))

	var b strings.Builder
	b.WriteString("## C. Loopback HTTPS with keep-alive\n\n")
	b.WriteString("`bench/cmd/benchserver`: controller-runtime's webhook server with the TLS options of `server.NewManager` (TLS 1.2+, HTTP/1.1), ")
	b.WriteString("a self-signed certificate, `GOMAXPROCS=1`, one process serving `/noop` and one serving `/mutate` (the production `server.Mutator`), ")
	b.WriteString("so each one's memory is its own. The load generator is vegeta, as a library, in the test process, over a pool of 16 keep-alive connections per server ")
	b.WriteString("opened during warm-up and kept for the whole run: open loop at 100 and 500 rps (4 s each; latency counts from when the generator sends, so waiting ")
	fmt.Fprintf(&b, "for a free connection counts), and closed loop with 8 workers for the maximum (3 s); %d rounds, noop and kaiwo interleaved. ", rounds)
	b.WriteString("Payload: the 8 KB kubectl-applied Job. Bytes per request are the server's `runtime.MemStats.TotalAlloc` delta over the requests it answered after warm-up.\n\n")
	b.WriteString("| | noop (floor) | kaiwo | kaiwo / noop |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| max throughput (median of rounds) | %.0f req/s | %.0f req/s | %.2fx (%s) |\n", median(tput["noop"]), median(tput["kaiwo"]), median(tputRatios), spread(tputRatios))
	for _, rate := range []int{100, 500} {
		fmt.Fprintf(&b, "| achieved at %d rps | %.0f req/s | %.0f req/s | |\n", rate, median(achieved["noop"][rate]), median(achieved["kaiwo"][rate]))
		fmt.Fprintf(&b, "| p50 at %d rps | %s | %s | %.2fx |\n", rate, ms(p50("noop", rate)), ms(p50("kaiwo", rate)), float64(p50("kaiwo", rate))/float64(p50("noop", rate)))
		fmt.Fprintf(&b, "| p99 at %d rps | %s | %s | %.2fx |\n", rate, ms(p99("noop", rate)), ms(p99("kaiwo", rate)), float64(p99("kaiwo", rate))/float64(p99("noop", rate)))
	}
	fmt.Fprintf(&b, "| bytes allocated per request | %.0f B | %.0f B | %.2fx |\n", perReq("noop"), perReq("kaiwo"), perReq("kaiwo")/perReq("noop"))
	fmt.Fprintf(&b, "| server RSS peak (VmHWM) | %.1f MiB | %.1f MiB | %.2fx |\n", mib(mem["noop"][0]), mib(mem["kaiwo"][0]), float64(mem["kaiwo"][0])/float64(mem["noop"][0]))
	fmt.Fprintf(&b, "| server RSS at the end (VmRSS) | %.1f MiB | %.1f MiB | %.2fx |\n", mib(mem["noop"][1]), mib(mem["kaiwo"][1]), float64(mem["kaiwo"][1])/float64(mem["noop"][1]))
	fmt.Fprintf(&b, "| requests answered (after warm-up) / failed | %d / %d | %d / %d | |\n\n", end["noop"].Requests-base["noop"].Requests, failed["noop"], end["kaiwo"].Requests-base["kaiwo"].Requests, failed["kaiwo"])
	r.section("C-tls", b.String())
	r.detail("tls", map[string]any{
		"throughput_rps":         map[string]float64{"noop": median(tput["noop"]), "kaiwo": median(tput["kaiwo"])},
		"p50_100rps_ms":          map[string]float64{"noop": msf(p50("noop", 100)), "kaiwo": msf(p50("kaiwo", 100))},
		"p99_100rps_ms":          map[string]float64{"noop": msf(p99("noop", 100)), "kaiwo": msf(p99("kaiwo", 100))},
		"p50_500rps_ms":          map[string]float64{"noop": msf(p50("noop", 500)), "kaiwo": msf(p50("kaiwo", 500))},
		"p99_500rps_ms":          map[string]float64{"noop": msf(p99("noop", 500)), "kaiwo": msf(p99("kaiwo", 500))},
		"bytes_per_request":      map[string]float64{"noop": perReq("noop"), "kaiwo": perReq("kaiwo")},
		"rss_hwm_mib":            map[string]float64{"noop": mib(mem["noop"][0]), "kaiwo": mib(mem["kaiwo"][0])},
		"rss_end_mib":            map[string]float64{"noop": mib(mem["noop"][1]), "kaiwo": mib(mem["kaiwo"][1])},
		"failed_requests":        failed,
		"p50_100rps_vs_noop":     round(float64(p50("kaiwo", 100))/float64(p50("noop", 100)), 3),
		"p99_100rps_vs_noop":     round(float64(p99("kaiwo", 100))/float64(p99("noop", 100)), 3),
		"p50_500rps_vs_noop":     round(float64(p50("kaiwo", 500))/float64(p50("noop", 500)), 3),
		"bytes_per_request_noop": perReq("noop"),
	})
	r.finding("Over loopback HTTPS on one core (C): the floor allocates %.0f B per request (TLS records, HTTP, the review decoded); the 8 KB Job costs %.0f B more. "+
		"The kaiwo server peaks at %.0f req/s against the floor's %.0f; offered 500 rps it answered %.0f req/s.",
		perReq("noop"), perReq("kaiwo")-perReq("noop"), median(tput["kaiwo"]), median(tput["noop"]), median(achieved["kaiwo"][500]))
	if failed["noop"]+failed["kaiwo"] > 0 {
		r.note("C-tls", "%d noop and %d kaiwo requests failed or timed out (10 s); they are left out of the latencies.", failed["noop"], failed["kaiwo"])
	}
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func msf(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }
