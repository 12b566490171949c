package registry

import (
	"context"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/progress"
)

// benchServices are the stack's four images: one shared base layer (as the
// demo's FROM-scratch program, or a common CUDA base) and a layer of their own.
var benchServices = []string{"frontend", "backend", "voicevox", "openvoice"}

type benchRelease struct {
	images []Image
	size   int64 // every distinct blob once
}

// pushBenchRelease makes A's repositories and pushes the four images.
func pushBenchRelease(tb testing.TB, api *ecr.Client, reg Registry) benchRelease {
	base := randomBlob(tb, 4<<20)
	var r benchRelease
	r.size = int64(len(base))
	for _, svc := range benchServices {
		_, err := api.CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: sdkaws.String("vmapp/" + svc)})
		require.NoError(tb, err)
		img := pushTestImage(tb, reg, "vmapp/"+svc, "r1", base, randomBlob(tb, 256<<10))
		r.size += img.size - int64(len(base))
		r.images = append(r.images, Image{Services: []string{svc}, From: "vmapp/" + svc, To: "vmapp/" + svc, Digest: img.digest})
	}
	return r
}

// benchPlanB is B's plan as far as copying reads it, with its repositories made.
func benchPlanB(tb testing.TB, api *ecr.Client, images []Image) *ecs.Plan {
	p := &ecs.Plan{Environment: "prod"}
	for _, img := range images {
		p.Repositories = append(p.Repositories, ecs.Repository{Name: img.To, Services: img.Services})
		_, err := api.CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: sdkaws.String(img.To)})
		require.NoError(tb, err)
	}
	return p
}

// BenchmarkPromoteBytes reports the layer bytes promote's copy step moves
// for the four images of a release: within one registry (every account's
// ECR in the simulator) and across two registries, first and again.
func BenchmarkPromoteBytes(b *testing.B) {
	ctx := context.Background()

	b.Run("within-registry", func(b *testing.B) {
		sim := awssim.New()
		b.Cleanup(sim.Close)
		sim.AddUser("AKIASTAGING", awssim.Principal{Account: "222222222222"})
		sim.AddUser("AKIAPROD", awssim.Principal{Account: "333333333333"})
		from := ecr.NewFromConfig(simtest.Config(b, sim, "AKIASTAGING"))
		to := ecr.NewFromConfig(simtest.Config(b, sim, "AKIAPROD"))
		regA, err := ECRRegistry(ctx, from)
		require.NoError(b, err)
		regB, err := ECRRegistry(ctx, to)
		require.NoError(b, err)
		rel := pushBenchRelease(b, from, regA)
		var moved int64
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			// Prod's repositories under names of their own, so each round's
			// manifests have to be put, and their layers mounted.
			images := make([]Image, len(rel.images))
			for j, img := range rel.images {
				img.To = "prod" + itoa(i) + "/" + img.Services[0]
				images[j] = img
			}
			planB := benchPlanB(b, to, images)
			b.StartTimer()
			copies, err := CopyImages(ctx, from, to, regA, regB, planB, images, "r1", progress.Discard{})
			require.NoError(b, err)
			for _, c := range copies {
				moved += c.Stats.BytesMoved
			}
		}
		b.ReportMetric(float64(moved)/float64(b.N), "bytes-moved/op")
		b.ReportMetric(float64(rel.size), "release-bytes")
	})

	b.Run("across-registries", func(b *testing.B) {
		staging := awssim.New()
		b.Cleanup(staging.Close)
		staging.AddUser("AKIASTAGING", awssim.Principal{Account: "222222222222"})
		from := ecr.NewFromConfig(simtest.Config(b, staging, "AKIASTAGING"))
		regA, err := ECRRegistry(ctx, from)
		require.NoError(b, err)
		rel := pushBenchRelease(b, from, regA)
		var first, again int64
		var mounted int
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			prod := awssim.New() // an empty registry every round
			prod.AddUser("AKIAPROD", awssim.Principal{Account: "333333333333"})
			to := ecr.NewFromConfig(simtest.Config(b, prod, "AKIAPROD"))
			regB, err := ECRRegistry(ctx, to)
			require.NoError(b, err)
			planB := benchPlanB(b, to, rel.images)
			b.StartTimer()
			copies, err := CopyImages(ctx, from, to, regA, regB, planB, rel.images, "r1", progress.Discard{})
			require.NoError(b, err)
			for _, c := range copies {
				first += c.Stats.BytesMoved
				mounted += c.Stats.BlobsMounted
			}
			copies, err = CopyImages(ctx, from, to, regA, regB, planB, rel.images, "r1", progress.Discard{})
			require.NoError(b, err)
			for _, c := range copies {
				again += c.Stats.BytesMoved
			}
			b.StopTimer()
			prod.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(first)/float64(b.N), "bytes-moved-first/op")
		b.ReportMetric(float64(again)/float64(b.N), "bytes-moved-again/op")
		b.ReportMetric(float64(mounted)/float64(b.N), "blobs-mounted/op")
		b.ReportMetric(float64(rel.size), "release-bytes")
	})
}
