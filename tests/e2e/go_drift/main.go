// Command go_drift makes a stopped Go worker's replica drift from the
// controller, through the go module's documented replica API
// (worker.OpenReplica, Replica.Store), for the chaos e2e test.
//
//	go_drift -dir STATE_DIR -ns NS -count N
//
// It changes the value of the first N keys of NS (in key order) at the
// replica's own revision, deletes the next N and adds N keys the controller
// never had, then prints {"rev": R, "changed": [...], "deleted": [...],
// "added": [...]} as JSON.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"

	"github.com/statesync/statesync/go/worker"
)

func main() {
	dir := flag.String("dir", "", "the stopped worker's state directory")
	ns := flag.String("ns", "", "the namespace to drift")
	count := flag.Int("count", 1, "how many keys to change, delete and add (each)")
	flag.Parse()
	if err := run(*dir, *ns, *count); err != nil {
		fmt.Fprintln(os.Stderr, "go_drift:", err)
		os.Exit(1)
	}
}

func run(dir, ns string, count int) error {
	if dir == "" || ns == "" || count < 1 {
		return fmt.Errorf("-dir, -ns and a positive -count are required")
	}
	replica, state, err := worker.OpenReplica(dir)
	if err != nil {
		return err
	}
	defer func() { _ = replica.Close() }()
	var keys []string
	for ref := range state.Entries {
		if ref.NS == ns {
			if _, held := state.Held[ref]; !held {
				keys = append(keys, ref.Key)
			}
		}
	}
	sort.Strings(keys)
	if len(keys) < 2*count {
		return fmt.Errorf("namespace %q holds %d keys, fewer than the %d to drift", ns, len(keys), 2*count)
	}
	write := &worker.Write{Rev: state.Rev, Puts: map[worker.KeyRef]worker.Entry{}}
	report := map[string]any{"rev": state.Rev}
	changed, deleted, added := keys[:count], keys[count:2*count], []string{}
	for _, key := range changed {
		ref := worker.KeyRef{NS: ns, Key: key}
		entry := state.Entries[ref]
		entry.Value = []byte(`{"drift":"go"}`)
		entry.SourceHash = nil
		write.Puts[ref] = entry
	}
	for _, key := range deleted {
		write.Deletes = append(write.Deletes, worker.KeyRef{NS: ns, Key: key})
	}
	for i := range count {
		key := fmt.Sprintf("drift-go-%03d", i)
		added = append(added, key)
		write.Puts[worker.KeyRef{NS: ns, Key: key}] = worker.Entry{
			Value: []byte(`{"drift":"go"}`), CreateRev: state.Rev, ModRev: state.Rev, Version: 1,
		}
	}
	if err := replica.Store([]*worker.Write{write}); err != nil {
		return err
	}
	report["changed"], report["deleted"], report["added"] = changed, deleted, added
	return json.NewEncoder(os.Stdout).Encode(report)
}
