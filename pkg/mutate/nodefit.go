package mutate

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/silogen/kaiwo-webhook/pkg/annotations"
)

// Env vars of the env annotation that Ray planning reads, as the Kaiwo CLI did.
const (
	EnvPipelineParallelism = "PIPELINE_PARALLELISM"
	EnvTensorParallelism   = "TENSOR_PARALLELISM"
)

// perNode is the GPUs of one node (the policy's gpusPerNode, built-in 8) and how messages name it.
func (s *settings) perNode() (int64, string) {
	n := int64(s.pol.Defaults.GPUsPerNode)
	if n <= 0 {
		n = 8
	}
	return n, fmt.Sprintf("the %d GPUs of a node (gpusPerNode of KaiwoPolicy %q)", n, s.pol.Name)
}

// fitNode denies a worker (one pod, on one node) of per GPUs that no node can hold. The error sits at
// p with value v, where the user wrote what gave the worker its GPUs; why says how it came to per.
func (s *settings) fitNode(per int64, p *field.Path, v any, why string) *field.Error {
	n, node := s.perNode()
	if per <= n {
		return nil
	}
	return field.Invalid(p, v, fmt.Sprintf("%s gives each worker %d GPUs, more than %s: a worker is one pod and runs on one node", why, per, node))
}

// halfNode is the Kaiwo CLI's warning for workers that use less than half a node each.
func (s *settings) halfNode(workers, per int64) string {
	n, _ := s.perNode()
	if workers <= 1 || per <= 0 || per*2 >= n {
		return ""
	}
	return fmt.Sprintf("each worker uses %d of %d GPUs on a node: fewer workers with more GPUs each (a total divisible by %d) pack nodes fully", per, n, n)
}

// parallelism reads PIPELINE_PARALLELISM and TENSOR_PARALLELISM from the env annotation: 0 when unset.
// A value that is set must be a whole number from 1 to 2147483647.
func (s *settings) parallelism() (pp, tp int64, err *field.Error) {
	env := s.env()
	read := func(name string) int64 {
		v, ok := env[name]
		if !ok || err != nil {
			return 0
		}
		n, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if perr != nil || n < 1 {
			err = field.Invalid(annotationsPath.Key(annotations.Env), name+"="+annotations.Shorten(v),
				"must be a whole number from 1 to 2147483647: Kaiwo plans Ray workers from it")
		}
		return n
	}
	pp, tp = read(EnvPipelineParallelism), read(EnvTensorParallelism)
	if err != nil {
		return 0, 0, err
	}
	return pp, tp, nil
}

// podGPUs is the GPUs of the one pod of a Job or Deployment, as the Kaiwo CLI gave them: replicas x
// gpus-per-replica (replicas 1 when unset), else gpus; with gpus as well, they must agree. nil: none asked.
func (s *settings) podGPUs() (*int32, *field.Error) {
	o := s.opts
	if o.GPUsPerReplica == nil {
		if s.gpus != nil {
			if err := s.fitNode(int64(*s.gpus), annotationsPath.Key(annotations.GPUs), strconv.Itoa(int(*s.gpus)), "kaiwo.silogen.ai/gpus"); err != nil {
				err.Detail += "; use a RayJob or RayService to span nodes"
				return nil, err
			}
		}
		return s.gpus, nil
	}
	r := int64(1)
	if o.Replicas != nil {
		r = int64(*o.Replicas)
	}
	prod := r * int64(*o.GPUsPerReplica) // both int32: no overflow in int64
	why := fmt.Sprintf("replicas x gpus-per-replica = %d x %d = %d", r, *o.GPUsPerReplica, prod)
	if s.gpus != nil && int64(*s.gpus) != prod {
		return nil, field.Invalid(annotationsPath.Key(annotations.GPUs), strconv.Itoa(int(*s.gpus)),
			fmt.Sprintf("must equal %s, the pod's GPUs; remove one of them", why))
	}
	if err := s.fitNode(prod, annotationsPath.Key(annotations.GPUsPerReplica), strconv.Itoa(int(*o.GPUsPerReplica)), why+" for the pod"); err != nil {
		err.Detail += "; use a RayJob or RayService to span nodes"
		return nil, err
	}
	n := int32(prod) // at most perNode, which is an int32
	return &n, nil
}
