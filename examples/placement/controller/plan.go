package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// placement is a job's value: where it runs and what.
type placement struct {
	Node  string `json:"node"`
	Image string `json:"image"`
}

var images = []string{"nginx:1.27", "redis:7.4", "envoy:1.31", "postgres:17", "memcached:1.6"}

// change is one key of a plan step: a new placement, or a removal (to nil),
// guarded by the mod_rev the key had when it was planned (0: absent).
type change struct {
	job    string
	from   string // the node it was on ("" for a new job)
	to     *placement
	modRev int64
}

func (c change) String() string {
	switch {
	case c.to == nil:
		return fmt.Sprintf("remove %s from %s", c.job, c.from)
	case c.from == "" && c.modRev != 0:
		return fmt.Sprintf("place %s again (%s) on %s", c.job, c.to.Image, c.to.Node)
	case c.from == "":
		return fmt.Sprintf("place %s (%s) on %s", c.job, c.to.Image, c.to.Node)
	default:
		return fmt.Sprintf("move %s from %s to %s", c.job, c.from, c.to.Node)
	}
}

// planner holds the controller's view: every job's placement and mod_rev.
type planner struct {
	nodes     []string
	random    *rand.Rand
	rev       int64 // the revision the view is at
	placed    map[string]placement
	modRevs   map[string]int64
	misplaced map[string]int64 // keys holding something else than a placement
	next      int              // the number of the next new job
}

func newPlanner(nodes []string, seed uint64) *planner {
	return &planner{nodes: nodes, random: rand.New(rand.NewPCG(seed, seed))}
}

func (p *planner) reset(rev int64) {
	p.rev = rev
	p.placed = map[string]placement{}
	p.modRevs = map[string]int64{}
	p.misplaced = map[string]int64{}
}

func (p *planner) adopt(job string, pl placement, modRev int64) {
	p.placed[job] = pl
	p.modRevs[job] = modRev
	var n int
	if _, err := fmt.Sscanf(job, "job-%d", &n); err == nil && n >= p.next {
		p.next = n + 1
	}
}

// fill places misplaced keys again and new jobs until there are `jobs`.
func (p *planner) fill(jobs int) []change {
	var out []change
	for _, job := range sortedKeys(p.misplaced) {
		out = append(out, p.place(job, p.misplaced[job], out))
	}
	for len(p.placed)+len(out) < jobs {
		out = append(out, p.place(p.newJob(), 0, out))
	}
	return out
}

// replan removes a job, moves one from the most loaded node to the least
// loaded other one, and adds one on the least loaded node.
func (p *planner) replan() []change {
	jobs := sortedKeys(p.placed)
	if len(jobs) < 3 {
		return nil
	}
	removed := jobs[p.random.IntN(len(jobs))]
	out := []change{{job: removed, from: p.placed[removed].Node, modRev: p.modRevs[removed]}}
	busiest := p.mostLoaded(out)
	var candidates []string
	for _, job := range jobs {
		if job != removed && p.placed[job].Node == busiest {
			candidates = append(candidates, job)
		}
	}
	if len(candidates) > 0 {
		moved := candidates[p.random.IntN(len(candidates))]
		from := p.placed[moved]
		to := placement{Node: p.leastLoaded(from.Node, out), Image: from.Image}
		out = append(out, change{job: moved, from: from.Node, to: &to, modRev: p.modRevs[moved]})
	}
	return append(out, p.place(p.newJob(), 0, out))
}

func (p *planner) newJob() string {
	p.next = max(p.next, 1)
	job := fmt.Sprintf("job-%d", p.next)
	p.next++
	return job
}

func (p *planner) place(job string, modRev int64, pending []change) change {
	to := placement{Node: p.leastLoaded("", pending), Image: images[p.random.IntN(len(images))]}
	return change{job: job, to: &to, modRev: modRev}
}

// mostLoaded is the node with the most jobs once the pending changes are
// made, the first in --nodes order on a tie.
func (p *planner) mostLoaded(pending []change) string {
	load := p.loads(pending)
	best := p.nodes[0]
	for _, n := range p.nodes {
		if load[n] > load[best] {
			best = n
		}
	}
	return best
}

// leastLoaded is the node (other than `not`) with the fewest jobs once the
// pending changes are made, the first in --nodes order on a tie.
func (p *planner) leastLoaded(not string, pending []change) string {
	load := p.loads(pending)
	best := ""
	for _, n := range p.nodes {
		if n != not && (best == "" || load[n] < load[best]) {
			best = n
		}
	}
	return best
}

// loads counts the jobs on each node once the pending changes are made.
func (p *planner) loads(pending []change) map[string]int {
	load := map[string]int{}
	for _, pl := range p.placed {
		load[pl.Node]++
	}
	for _, c := range pending {
		if _, ok := p.placed[c.job]; ok {
			load[c.from]--
		}
		if c.to != nil {
			load[c.to.Node]++
		}
	}
	return load
}

// committed records a plan step written at rev.
func (p *planner) committed(changes []change, rev int64) {
	for _, c := range changes {
		delete(p.misplaced, c.job)
		if c.to == nil {
			delete(p.placed, c.job)
			delete(p.modRevs, c.job)
			continue
		}
		p.placed[c.job] = *c.to
		p.modRevs[c.job] = rev
	}
	p.rev = rev
}

func (p *planner) final(ns string) Final {
	out := Final{Rev: p.rev, NS: ns, Placements: map[string]string{}}
	for job, pl := range p.placed {
		out.Placements[job] = pl.Node
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
