package infra

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/cloudfront"
	"github.com/awslabs/goformation/v7/cloudformation/efs"
	"github.com/awslabs/goformation/v7/cloudformation/elasticache"
	"github.com/awslabs/goformation/v7/cloudformation/kms"
	"github.com/awslabs/goformation/v7/cloudformation/rds"
	"github.com/awslabs/goformation/v7/cloudformation/s3"
)

const (
	// databaseName and databaseUser are the compose stack's (POSTGRES_DB, POSTGRES_USER),
	// so the app's connection string keeps its shape on RDS.
	databaseName = "vmapp"
	databaseUser = "vmapp"
	// keyRotationDays is seed §3.1's yearly key rotation.
	keyRotationDays = 365
	// Video lifecycle, seed §6.2: Standard for 30 days, Infrequent Access to 90, then Glacier.
	videoIADays      = 30
	videoGlacierDays = 90
	// appUser is the uid and gid the app's images run as (images/backend and
	// images/openvoice: USER 10001:10001), the owner of the EFS volumes.
	appUser = "10001"
	// cachingOptimized is CloudFront's managed cache policy for static objects.
	cachingOptimized = "658327ea-f89d-4fab-a63d-7e88639e58f6"
)

// keep marks a stateful resource: deleting the stack or replacing the resource keeps it
// (Retain), or, for the database, keeps a final snapshot.
const (
	retain   = "Retain"
	snapshot = "Snapshot"
)

// key is the environment's KMS key (seed §3.1): the database, cache, file system, bucket
// and alarm topic are encrypted with it; it rotates yearly and outlives the stack.
func (r *renderer) key() {
	account := cloudformation.Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")
	r.add(LogicalDataKey, &kms.Key{
		Description:          cloudformation.String("vmctl " + r.env.Name + ": data at rest (RDS, ElastiCache, EFS, S3, SNS)"),
		EnableKeyRotation:    cloudformation.Bool(true),
		RotationPeriodInDays: cloudformation.Int(keyRotationDays),
		PendingWindowInDays:  cloudformation.Int(30),
		KeyPolicy: policy(
			// The account administers the key through IAM, as for any other resource.
			map[string]interface{}{"Sid": "Account", "Effect": "Allow", "Principal": map[string]interface{}{"AWS": account}, "Action": "kms:*", "Resource": "*"},
			// Alarms, budgets and cost anomalies publish to the encrypted topic.
			map[string]interface{}{
				"Sid": "AlarmPublishers", "Effect": "Allow",
				"Principal": map[string]interface{}{"Service": []string{"budgets.amazonaws.com", "cloudwatch.amazonaws.com", "costalerts.amazonaws.com"}},
				"Action":    []string{"kms:Decrypt", "kms:GenerateDataKey*"}, "Resource": "*",
			},
			// CloudFront reads the encrypted videos for this account's distributions only.
			map[string]interface{}{
				"Sid": "CloudFrontVideos", "Effect": "Allow",
				"Principal": map[string]interface{}{"Service": "cloudfront.amazonaws.com"},
				"Action":    []string{"kms:Decrypt"}, "Resource": "*",
				"Condition": map[string]interface{}{"StringLike": map[string]interface{}{
					"AWS:SourceArn": cloudformation.Sub("arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/*"),
				}},
			},
		),
		AWSCloudFormationDeletionPolicy:      retain,
		AWSCloudFormationUpdateReplacePolicy: retain,
	})
	r.add("DataKeyAlias", &kms.Alias{AliasName: "alias/" + r.name("data"), TargetKeyId: cloudformation.Ref(LogicalDataKey)})
	r.output(OutKMSKey, cloudformation.GetAtt(LogicalDataKey, "Arn"))
}

// database is RDS PostgreSQL in the database subnets (seed §1.2, §3): Multi-AZ where the
// file says, encrypted, point-in-time recovery, the master password kept by Secrets
// Manager, deletion protection and a final snapshot.
func (r *renderer) database() {
	pg := r.aws.Stores.Postgres
	if pg.Endpoint != "" {
		r.output(OutPostgres, pg.Endpoint)
		return
	}
	r.add("DatabaseSubnetGroup", &rds.DBSubnetGroup{
		DBSubnetGroupDescription: "vmctl " + r.env.Name + ": database subnets",
		SubnetIds:                r.subnets[TierDatabase],
	})
	r.add(LogicalDatabase, &rds.DBInstance{
		Engine:                   cloudformation.String("postgres"),
		EngineVersion:            cloudformation.String(pg.EngineVersion),
		DBInstanceClass:          cloudformation.String(pg.InstanceClass),
		AllocatedStorage:         cloudformation.String(strconv.Itoa(pg.StorageGiB)),
		StorageType:              cloudformation.String("gp3"),
		MultiAZ:                  cloudformation.Bool(pg.MultiAZ),
		DBName:                   cloudformation.String(databaseName),
		MasterUsername:           cloudformation.String(databaseUser),
		ManageMasterUserPassword: cloudformation.Bool(true),
		MasterUserSecret:         &rds.DBInstance_MasterUserSecret{KmsKeyId: cloudformation.RefPtr(LogicalDataKey)},
		StorageEncrypted:         cloudformation.Bool(true),
		KmsKeyId:                 cloudformation.GetAttPtr(LogicalDataKey, "Arn"),
		BackupRetentionPeriod:    cloudformation.Int(pg.BackupRetentionDays),
		// A protected environment's database cannot be deleted, not even by the stack; dev's
		// can, so infra destroy works there, and the snapshot on delete still keeps its data.
		DeletionProtection:                   cloudformation.Bool(r.env.Protected),
		CopyTagsToSnapshot:                   cloudformation.Bool(true),
		PubliclyAccessible:                   cloudformation.Bool(false),
		AutoMinorVersionUpgrade:              cloudformation.Bool(true),
		DBSubnetGroupName:                    cloudformation.RefPtr("DatabaseSubnetGroup"),
		VPCSecurityGroups:                    []string{r.groups[roleRDS]},
		AWSCloudFormationDeletionPolicy:      snapshot,
		AWSCloudFormationUpdateReplacePolicy: snapshot,
	})
	r.output(OutPostgres, cloudformation.Join(":", []string{
		cloudformation.GetAtt(LogicalDatabase, "Endpoint.Address"), cloudformation.GetAtt(LogicalDatabase, "Endpoint.Port"),
	}))
	r.output(OutPostgresSecret, cloudformation.GetAtt(LogicalDatabase, "MasterUserSecret.SecretArn"))
}

// cache is ElastiCache Redis (seed §4.2) in the private subnets, encrypted in transit and at
// rest; with a replica it fails over on its own.
func (r *renderer) cache() {
	rd := r.aws.Stores.Redis
	if rd.Endpoint != "" {
		r.output(OutRedis, rd.Endpoint)
		return
	}
	r.add("CacheSubnetGroup", &elasticache.SubnetGroup{
		Description: "vmctl " + r.env.Name + ": cache in the private subnets",
		SubnetIds:   r.subnets[TierPrivate],
	})
	failover := rd.Replicas >= 1
	r.add(LogicalCache, &elasticache.ReplicationGroup{
		ReplicationGroupDescription: "vmctl " + r.env.Name + ": voice-profile cache",
		Engine:                      cloudformation.String("redis"),
		CacheNodeType:               cloudformation.String(rd.NodeType),
		NumCacheClusters:            cloudformation.Int(1 + rd.Replicas),
		AutomaticFailoverEnabled:    cloudformation.Bool(failover),
		MultiAZEnabled:              cloudformation.Bool(failover),
		TransitEncryptionEnabled:    cloudformation.Bool(true),
		AtRestEncryptionEnabled:     cloudformation.Bool(true),
		KmsKeyId:                    cloudformation.RefPtr(LogicalDataKey),
		Port:                        cloudformation.Int(portRedis),
		CacheSubnetGroupName:        cloudformation.RefPtr("CacheSubnetGroup"),
		SecurityGroupIds:            []string{r.groups[roleRedis]},
		// A cache: everything in it can be rebuilt from the database and EFS.
		AWSCloudFormationDeletionPolicy:      "Delete",
		AWSCloudFormationUpdateReplacePolicy: "Delete",
	})
	r.output(OutRedis, cloudformation.Join(":", []string{
		cloudformation.GetAtt(LogicalCache, "PrimaryEndPoint.Address"), cloudformation.GetAtt(LogicalCache, "PrimaryEndPoint.Port"),
	}))
}

// fileSystem is EFS for the stack's named volumes (voice profiles, model cache; seed §1.2,
// §4.1): encrypted with the key, a mount target per private subnet, an access point per
// volume, kept when the stack goes.
func (r *renderer) fileSystem() {
	fs := r.aws.Stores.EFS
	if len(fs.Volumes) == 0 {
		return
	}
	if fs.FileSystemID != "" {
		r.output(OutFileSystem, fs.FileSystemID)
		for _, name := range slices.Sorted(maps.Keys(fs.Volumes)) {
			r.output(OutAccessPoint(name), fs.Volumes[name].AccessPointID)
		}
		return
	}
	r.add(LogicalFileSystem, &efs.FileSystem{
		Encrypted:       cloudformation.Bool(true),
		KmsKeyId:        cloudformation.GetAttPtr(LogicalDataKey, "Arn"),
		PerformanceMode: cloudformation.String("generalPurpose"),
		ThroughputMode:  cloudformation.String("elastic"), // model loads come in bursts
		BackupPolicy:    &efs.FileSystem_BackupPolicy{Status: "ENABLED"},
		FileSystemTags: []efs.FileSystem_ElasticFileSystemTag{
			{Key: "Name", Value: r.name("volumes")}, {Key: TagEnvironment, Value: r.env.Name},
		},
		AWSCloudFormationDeletionPolicy:      retain,
		AWSCloudFormationUpdateReplacePolicy: retain,
	})
	for i, subnet := range r.subnets[TierPrivate] {
		r.add(fmt.Sprintf("MountTarget%d", i+1), &efs.MountTarget{
			FileSystemId: cloudformation.Ref(LogicalFileSystem), SubnetId: subnet, SecurityGroups: []string{r.groups[roleEFS]},
		})
	}
	r.output(OutFileSystem, cloudformation.Ref(LogicalFileSystem))
	for _, name := range slices.Sorted(maps.Keys(fs.Volumes)) {
		id := LogicalAccessPoint(name)
		r.add(id, &efs.AccessPoint{
			FileSystemId: cloudformation.Ref(LogicalFileSystem),
			// Each volume is its own directory, and every client acts as the user the app's
			// images run as, whatever user a container runs as.
			PosixUser: &efs.AccessPoint_PosixUser{Uid: appUser, Gid: appUser},
			RootDirectory: &efs.AccessPoint_RootDirectory{
				Path:         cloudformation.String("/" + name),
				CreationInfo: &efs.AccessPoint_CreationInfo{OwnerUid: appUser, OwnerGid: appUser, Permissions: "0750"},
			},
			AccessPointTags: []efs.AccessPoint_AccessPointTag{{Key: cloudformation.String(TagEnvironment), Value: cloudformation.String(r.env.Name)}},
		})
		r.output(OutAccessPoint(name), cloudformation.Ref(id))
	}
}

// videos is the bucket for generated videos (seed §1.2, §6.2) and CloudFront in front of
// it: versioned, encrypted with the key, never public (CloudFront reads it through origin
// access control), Standard → IA at 30 days → Glacier at 90, kept when the stack goes.
func (r *renderer) videos() {
	r.add(LogicalVideoBucket, &s3.Bucket{
		VersioningConfiguration: &s3.Bucket_VersioningConfiguration{Status: "Enabled"},
		BucketEncryption: &s3.Bucket_BucketEncryption{ServerSideEncryptionConfiguration: []s3.Bucket_ServerSideEncryptionRule{{
			ServerSideEncryptionByDefault: &s3.Bucket_ServerSideEncryptionByDefault{SSEAlgorithm: "aws:kms", KMSMasterKeyID: cloudformation.GetAttPtr(LogicalDataKey, "Arn")},
			BucketKeyEnabled:              cloudformation.Bool(true), // one KMS call per object batch, not per request
		}}},
		PublicAccessBlockConfiguration: &s3.Bucket_PublicAccessBlockConfiguration{
			BlockPublicAcls: cloudformation.Bool(true), BlockPublicPolicy: cloudformation.Bool(true),
			IgnorePublicAcls: cloudformation.Bool(true), RestrictPublicBuckets: cloudformation.Bool(true),
		},
		OwnershipControls: &s3.Bucket_OwnershipControls{Rules: []s3.Bucket_OwnershipControlsRule{{ObjectOwnership: cloudformation.String("BucketOwnerEnforced")}}},
		LifecycleConfiguration: &s3.Bucket_LifecycleConfiguration{Rules: []s3.Bucket_Rule{{
			Id: cloudformation.String("videos-age"), Status: "Enabled",
			Transitions: []s3.Bucket_Transition{
				{StorageClass: "STANDARD_IA", TransitionInDays: cloudformation.Int(videoIADays)},
				{StorageClass: "GLACIER", TransitionInDays: cloudformation.Int(videoGlacierDays)},
			},
			NoncurrentVersionTransitions:   []s3.Bucket_NoncurrentVersionTransition{{StorageClass: "GLACIER", TransitionInDays: videoIADays}},
			AbortIncompleteMultipartUpload: &s3.Bucket_AbortIncompleteMultipartUpload{DaysAfterInitiation: 7},
		}}},
		AWSCloudFormationDeletionPolicy:      retain,
		AWSCloudFormationUpdateReplacePolicy: retain,
	})
	r.output(OutVideoBucket, cloudformation.Ref(LogicalVideoBucket))

	r.add("CdnOriginAccessControl", &cloudfront.OriginAccessControl{OriginAccessControlConfig: &cloudfront.OriginAccessControl_OriginAccessControlConfig{
		Name: r.name("videos"), OriginAccessControlOriginType: "s3", SigningBehavior: "always", SigningProtocol: "sigv4",
		Description: cloudformation.String("CloudFront reads the videos bucket of " + r.env.Name),
	}})
	r.add(LogicalCDN, &cloudfront.Distribution{DistributionConfig: &cloudfront.Distribution_DistributionConfig{
		Enabled:     true,
		Comment:     cloudformation.String("vmctl " + r.env.Name + ": generated videos"),
		HttpVersion: cloudformation.String("http2and3"),
		PriceClass:  cloudformation.String("PriceClass_200"), // includes Japan, where the users are
		Origins: []cloudfront.Distribution_Origin{{
			Id:                    "videos",
			DomainName:            cloudformation.GetAtt(LogicalVideoBucket, "RegionalDomainName"),
			OriginAccessControlId: cloudformation.GetAttPtr("CdnOriginAccessControl", "Id"),
			S3OriginConfig:        &cloudfront.Distribution_S3OriginConfig{OriginAccessIdentity: cloudformation.String("")},
		}},
		DefaultCacheBehavior: &cloudfront.Distribution_DefaultCacheBehavior{
			TargetOriginId:       "videos",
			ViewerProtocolPolicy: "redirect-to-https",
			AllowedMethods:       []string{"GET", "HEAD"},
			CachedMethods:        []string{"GET", "HEAD"},
			Compress:             cloudformation.Bool(true),
			CachePolicyId:        cloudformation.String(cachingOptimized),
		},
	}})
	r.output(OutCDNDomain, cloudformation.GetAtt(LogicalCDN, "DomainName"))

	bucketArn := cloudformation.GetAtt(LogicalVideoBucket, "Arn")
	r.add("VideoBucketPolicy", &s3.BucketPolicy{
		Bucket: cloudformation.Ref(LogicalVideoBucket),
		PolicyDocument: policy(
			map[string]interface{}{
				"Sid": "CloudFrontReads", "Effect": "Allow",
				"Principal": map[string]interface{}{"Service": "cloudfront.amazonaws.com"},
				"Action":    "s3:GetObject", "Resource": cloudformation.Sub("${" + LogicalVideoBucket + ".Arn}/*"),
				"Condition": map[string]interface{}{"StringEquals": map[string]interface{}{
					"AWS:SourceArn": cloudformation.Sub("arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${" + LogicalCDN + "}"),
				}},
			},
			map[string]interface{}{
				"Sid": "TLSOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
				"Resource":  []string{bucketArn, cloudformation.Sub("${" + LogicalVideoBucket + ".Arn}/*")},
				"Condition": map[string]interface{}{"Bool": map[string]interface{}{"aws:SecureTransport": "false"}},
			},
		),
	})
}
