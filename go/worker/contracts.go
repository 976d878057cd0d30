package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/statesync/statesync/go/canonical"
	"github.com/statesync/statesync/go/client"
	"github.com/statesync/statesync/go/schema"
	pb "github.com/statesync/statesync/go/statesyncv1"
)

// ContractsNamespace holds each namespace's contract (docs/contracts.md §1).
const ContractsNamespace = "_contracts"

// contractSchemas reads ns's contract from the controller and compiles the
// schemas of the versions the worker declared. A namespace without a
// contract has none.
func contractSchemas(ctx context.Context, rpc pb.StatesyncClient, ns string, declared []int32) (map[int32]*schema.Schema, error) {
	c := client.FromRPC(rpc)
	entry, err := c.Get(ctx, ContractsNamespace, ns, 0)
	if errors.Is(err, client.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	doc, err := canonical.Parse(entry.GetValue())
	if err != nil {
		return nil, fmt.Errorf("the contract of %q: %w", ns, err)
	}
	contract, _ := doc.(map[string]any)
	versions, _ := contract["versions"].([]any)
	out := map[int32]*schema.Schema{}
	for _, raw := range versions {
		v, _ := raw.(map[string]any)
		number, _ := v["version"].(float64)
		if !slices.Contains(declared, int32(number)) {
			continue
		}
		compiled, err := schema.Compile(v["schema"])
		if err != nil {
			return nil, fmt.Errorf("the contract of %q, version %v: %w", ns, number, err)
		}
		out[int32(number)] = compiled
	}
	return out, nil
}

// servedVersions lists the (namespace, version) pairs of the values in a reply.
func servedVersions(reply *pb.SyncReply) map[string][]int32 {
	out := map[string][]int32{}
	add := func(ns string, v int32) {
		if v != 0 && !slices.Contains(out[ns], v) {
			out[ns] = append(out[ns], v)
		}
	}
	for _, r := range reply.GetBatch().GetRevisions() {
		for _, c := range r.GetChanges() {
			add(c.GetNs(), c.GetSchemaVersion())
		}
	}
	for _, e := range reply.GetChunk().GetEntries() {
		add(e.GetNs(), e.GetSchemaVersion())
	}
	return out
}

// refreshContracts fetches the contracts of declared namespaces whose served
// versions the session has no schema for (all of them when force is set).
func (w *Worker) refreshContracts(ctx context.Context, rpc pb.StatesyncClient, reply *pb.SyncReply, force bool) error {
	for ns, declared := range w.cfg.Versions {
		stale := force
		if !force {
			w.mu.RLock()
			for _, v := range servedVersions(reply)[ns] {
				stale = stale || !w.session.ContractSchema(ns, v)
			}
			w.mu.RUnlock()
		}
		if !stale {
			continue
		}
		schemas, err := contractSchemas(ctx, rpc, ns, declared)
		if err != nil {
			return err
		}
		w.mu.Lock()
		w.session.SetContractSchemas(ns, schemas)
		w.mu.Unlock()
	}
	return nil
}
