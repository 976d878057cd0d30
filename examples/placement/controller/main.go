// Command controller owns the desired placement of jobs on nodes and writes
// it through statesync, one key per job in namespace "jobs":
//
//	jobs/job-3 = {"node": "node-b", "image": "redis:7.4"}
//
// It places --jobs jobs on --nodes, then re-plans every --every: it removes a
// job, moves one from the busiest node to the least loaded one and adds one,
// all in one command. Every write names the revision each key had when it was planned
// (a compare on mod_rev, 0 for a new key), so a placement changed behind its
// back is never overwritten blindly: the command fails with a conflict,
// nothing is written, and the controller re-reads and plans again. Every
// command carries an id, so a retry after a lost reply is applied once.
//
//	go run . --nodes node-a,node-b --jobs 6 --every 1s --rounds 5
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/statesync/statesync/go/client"
)

const help = `controller: places jobs on nodes and keeps the placements in statesync.

Usage: go run . [flags]

It reads what is placed already (namespace --ns; a key that holds no
placement is placed again), places --jobs jobs on the --nodes, then every
--every it re-plans: removes a job, moves one from the busiest node to the
least loaded one and adds one, in one command guarded by each key's mod_rev
and carrying a command id. A conflict (a placement changed by someone else)
writes nothing: it re-reads and plans again. Each command goes to stderr as
one line; when it stops (after --rounds re-plans, after --for, or on Ctrl-C)
it prints the final placements as one JSON object on stdout.

Watch the workers follow: statesync status (or statesync watch jobs).

Flags:
`

func main() {
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), help)
		flag.PrintDefaults()
	}
	server := os.Getenv("STATESYNC_SERVER")
	if server == "" {
		server = "127.0.0.1:7700"
	}
	var cfg config
	flag.StringVar(&cfg.target, "server", server, "the controller's gRPC address (default from $STATESYNC_SERVER)")
	flag.StringVar(&cfg.ns, "ns", "jobs", "the namespace of the placements")
	nodes := flag.String("nodes", "node-a,node-b", "the nodes to place jobs on, comma-separated")
	flag.IntVar(&cfg.jobs, "jobs", 6, "how many jobs to place at the start")
	flag.DurationVar(&cfg.every, "every", 2*time.Second, "how often to re-plan")
	flag.DurationVar(&cfg.lasting, "for", 0, "stop after this long (0: until Ctrl-C or --rounds)")
	flag.IntVar(&cfg.rounds, "rounds", 0, "stop after this many re-plans (0: until Ctrl-C or --for)")
	flag.Uint64Var(&cfg.seed, "seed", 1, "the seed of the re-planning choices (same seed, same plans)")
	flag.StringVar(&cfg.name, "name", "placer", "this controller's name, the prefix of its command ids")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "controller: unexpected argument %q (see --help)\n", flag.Arg(0))
		os.Exit(2)
	}
	for _, n := range strings.Split(*nodes, ",") {
		if n = strings.TrimSpace(n); n != "" {
			cfg.nodes = append(cfg.nodes, n)
		}
	}
	if len(cfg.nodes) < 2 || cfg.jobs < 3 || cfg.every <= 0 {
		fmt.Fprintln(os.Stderr, "controller: needs at least two --nodes, --jobs >= 3 and --every > 0")
		os.Exit(2)
	}
	log.SetFlags(log.Ltime)
	log.SetPrefix("controller: ")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.lasting > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.lasting)
		defer cancel()
	}
	final, err := run(ctx, cfg)
	if err != nil {
		log.Print(err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(final); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

type config struct {
	target, ns, name string
	nodes            []string
	jobs, rounds     int
	every, lasting   time.Duration
	seed             uint64
}

// Final is what the controller prints when it stops.
type Final struct {
	Rev        int64             `json:"rev"`
	NS         string            `json:"ns"`
	Placements map[string]string `json:"placements"`
}

func run(ctx context.Context, cfg config) (Final, error) {
	c, err := client.Dial(cfg.target)
	if err != nil {
		return Final{}, err
	}
	defer c.Close()
	p := newPlanner(cfg.nodes, cfg.seed)
	if err := load(ctx, c, cfg.ns, p); err != nil {
		return Final{}, err
	}
	log.Printf("%d jobs placed already at revision %d", len(p.placed), p.rev)
	changes := p.fill(cfg.jobs)
	ticker := time.NewTicker(cfg.every)
	defer ticker.Stop()
	for round := 0; ; round++ {
		if len(changes) > 0 {
			err := write(ctx, c, cfg, p, changes)
			switch {
			case errors.Is(err, client.ErrConflict):
				log.Printf("someone else changed a placement (%v); re-reading", err)
				if err := load(ctx, c, cfg.ns, p); err != nil {
					return Final{}, err
				}
			case ctx.Err() != nil:
				return p.final(cfg.ns), nil
			case err != nil:
				return Final{}, err
			}
		}
		if cfg.rounds > 0 && round == cfg.rounds {
			return p.final(cfg.ns), nil
		}
		select {
		case <-ctx.Done():
			return p.final(cfg.ns), nil
		case <-ticker.C:
			// Top up first (after a re-read that found jobs missing or misplaced).
			if changes = p.fill(cfg.jobs); len(changes) == 0 {
				changes = p.replan()
			}
		}
	}
}

// load replaces the planner's view with what the namespace holds now.
func load(ctx context.Context, c *client.Client, ns string, p *planner) error {
	entries, rev, err := c.Range(ctx, ns, "", 0)
	if err != nil {
		return fmt.Errorf("reading %s: %w", ns, err)
	}
	p.reset(rev)
	for _, e := range entries {
		var pl placement
		if err := json.Unmarshal(e.GetValue(), &pl); err != nil || pl.Node == "" || pl.Image == "" {
			// Not a placement (written by hand?): planned again, over its mod_rev.
			log.Printf("%s/%s is not a placement (%s); placing it again", ns, e.GetKey(), e.GetValue())
			p.misplaced[e.GetKey()] = e.GetModRev()
			continue
		}
		p.adopt(e.GetKey(), pl, e.GetModRev())
	}
	return nil
}

// write commits one plan step as one command and records the new mod_revs.
// A retryable failure is retried with the same command id: applied once.
func write(ctx context.Context, c *client.Client, cfg config, p *planner, changes []change) error {
	cmd := client.NewCommand().WithID(fmt.Sprintf("%s@%d", cfg.name, p.rev))
	for _, ch := range changes {
		cmd.IfModRev(cfg.ns, ch.job, ch.modRev)
		if ch.to == nil {
			cmd.Delete(cfg.ns, ch.job)
		} else {
			cmd.Put(cfg.ns, ch.job, map[string]any{"node": ch.to.Node, "image": ch.to.Image})
		}
	}
	for attempt := 1; ; attempt++ {
		reply, err := c.Commit(ctx, cmd)
		var e *client.Error
		if errors.As(err, &e) && e.Retryable() && attempt < 5 {
			log.Printf("commit failed (%v); retrying the same command", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return err
		}
		p.committed(changes, reply.GetRev())
		words := make([]string, len(changes))
		for i, ch := range changes {
			words[i] = ch.String()
		}
		log.Printf("rev %d %s: %s", reply.GetRev(), reply.GetCommandId(), strings.Join(words, "; "))
		return nil
	}
}
