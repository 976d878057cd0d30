package main

import "testing"

func loads(p *planner, changes []change) map[string]int {
	out := map[string]int{}
	for _, pl := range p.placed {
		out[pl.Node]++
	}
	for _, c := range changes {
		if c.to != nil {
			out[c.to.Node]++
		}
	}
	return out
}

func TestFillSpreadsNewJobsOverTheNodes(t *testing.T) {
	p := newPlanner([]string{"node-a", "node-b", "node-c"}, 1)
	p.reset(0)
	changes := p.fill(6)
	if len(changes) != 6 {
		t.Fatalf("want 6 new jobs, got %v", changes)
	}
	for node, n := range loads(p, changes) {
		if n != 2 {
			t.Errorf("%s gets %d jobs, want 2 each", node, n)
		}
	}
	for _, c := range changes {
		if c.modRev != 0 || c.from != "" {
			t.Errorf("a new job is written only if absent: %+v", c)
		}
	}
}

func TestReplanMovesAddsAndRemovesGuardedByModRevs(t *testing.T) {
	p := newPlanner([]string{"node-a", "node-b"}, 7)
	p.reset(0)
	p.committed(p.fill(4), 1)
	for round := int64(2); round < 20; round++ {
		changes := p.replan()
		if len(changes) != 3 {
			t.Fatalf("round %d: want remove, move, add; got %v", round, changes)
		}
		removed, moved, added := changes[0], changes[1], changes[2]
		if removed.to != nil || removed.modRev != p.modRevs[removed.job] {
			t.Errorf("round %d: bad removal %+v", round, removed)
		}
		if moved.to == nil || moved.to.Node == moved.from || moved.modRev != p.modRevs[moved.job] {
			t.Errorf("round %d: bad move %+v", round, moved)
		}
		if _, exists := p.placed[added.job]; exists || added.modRev != 0 {
			t.Errorf("round %d: the new job %s is not new", round, added.job)
		}
		p.committed(changes, round)
		if len(p.placed) != 4 || p.modRevs[moved.job] != round || p.modRevs[added.job] != round {
			t.Fatalf("round %d: view after commit: %v %v", round, p.placed, p.modRevs)
		}
		if load := loads(p, nil); load["node-a"] != 2 || load["node-b"] != 2 {
			t.Fatalf("round %d: the nodes are not balanced: %v", round, load)
		}
	}
}

func TestAKeyThatIsNotAPlacementIsPlacedAgainOverItsModRev(t *testing.T) {
	p := newPlanner([]string{"node-a", "node-b"}, 1)
	p.reset(9)
	p.adopt("job-4", placement{Node: "node-a", Image: "redis:7.4"}, 3)
	p.misplaced["job-2"] = 8
	changes := p.fill(2)
	if len(changes) != 1 || changes[0].job != "job-2" || changes[0].modRev != 8 || changes[0].to.Node != "node-b" {
		t.Fatalf("want job-2 placed on node-b over mod_rev 8, got %+v", changes)
	}
	if job := p.newJob(); job != "job-5" {
		t.Errorf("new jobs continue after the highest adopted one: got %s", job)
	}
}
