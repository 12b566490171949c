package awssim

import (
	"cmp"
	"fmt"
	"strings"
)

// Records: resource types the simulator keeps without running them (the
// network, data stores, encryption, alarms, IAM, …). Each gets the kind of
// physical id AWS gives it (what Ref returns) and the attributes templates
// read with Fn::GetAtt; an attribute not listed fails the resource that
// reads it. Updates change the record in place unless a property that
// replaces the resource changed.

type cfnRecord struct {
	ref       func(x *cfnOp, r *cfnResource) string
	attrs     func(x *cfnOp, r *cfnResource) map[string]any
	replaceOn []string
}

func (rec cfnRecord) handler() *cfnHandler {
	fill := func(x *cfnOp, r *cfnResource) {
		if rec.attrs != nil {
			r.attrs = rec.attrs(x, r)
		}
		if r.attrs == nil {
			r.attrs = map[string]any{}
		}
	}
	return &cfnHandler{
		create: func(x *cfnOp, r *cfnResource) error {
			r.physical = rec.ref(x, r)
			fill(x, r)
			return nil
		},
		update:    func(x *cfnOp, r *cfnResource, _ map[string]any) error { fill(x, r); return nil },
		delete:    func(*cfnOp, *cfnResource) error { return nil },
		replaceOn: rec.replaceOn,
	}
}

// id is an EC2-style id: prefix and 17 hex digits.
func id(prefix string) func(*cfnOp, *cfnResource) string {
	return func(*cfnOp, *cfnResource) string { return prefix + computeHex(17) }
}

// named is the name property, else a generated name of at most limit.
func named(prop string, limit int) func(*cfnOp, *cfnResource) string {
	return func(x *cfnOp, r *cfnResource) string {
		return cmp.Or(propString(r.props, prop), physicalName(x, r, limit))
	}
}

// lower is a generated name in lower case (S3 buckets, RDS identifiers).
func lower(prop string, limit int) func(*cfnOp, *cfnResource) string {
	return func(x *cfnOp, r *cfnResource) string {
		return cmp.Or(propString(r.props, prop), strings.ToLower(physicalName(x, r, limit)))
	}
}

// arnOf is an ARN ending in resource, made from the named or generated name.
func arnOf(service, prefix string, name func(*cfnOp, *cfnResource) string) func(*cfnOp, *cfnResource) string {
	return func(x *cfnOp, r *cfnResource) string { return x.st.home.arn(service, prefix+name(x, r)) }
}

func fixed(v string) func(*cfnOp, *cfnResource) string {
	return func(*cfnOp, *cfnResource) string { return v }
}

var cfnRecords = map[string]cfnRecord{
	// Network.
	"AWS::EC2::VPC": {ref: id("vpc-"), replaceOn: []string{"CidrBlock", "InstanceTenancy"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"VpcId": r.physical, "CidrBlock": propString(r.props, "CidrBlock"), "DefaultSecurityGroup": "sg-" + computeHex(17),
			"DefaultNetworkAcl": "acl-" + computeHex(17), "CidrBlockAssociations": []any{"vpc-cidr-assoc-" + computeHex(17)}}
	}},
	"AWS::EC2::Subnet": {ref: id("subnet-"), replaceOn: []string{"CidrBlock", "VpcId", "AvailabilityZone"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"SubnetId": r.physical, "VpcId": propString(r.props, "VpcId"), "AvailabilityZone": propString(r.props, "AvailabilityZone"), "CidrBlock": propString(r.props, "CidrBlock")}
	}},
	"AWS::EC2::InternetGateway":      {ref: id("igw-"), attrs: func(x *cfnOp, r *cfnResource) map[string]any { return map[string]any{"InternetGatewayId": r.physical} }},
	"AWS::EC2::VPCGatewayAttachment": {ref: func(x *cfnOp, r *cfnResource) string { return "IGW|" + propString(r.props, "VpcId") }, replaceOn: []string{"VpcId", "InternetGatewayId"}},
	"AWS::EC2::EIP": {ref: func(*cfnOp, *cfnResource) string { return "203.0.113." + fmt.Sprint(1+int(computeHex(1)[0])%250) }, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"AllocationId": "eipalloc-" + computeHex(17), "PublicIp": r.physical}
	}},
	"AWS::EC2::NatGateway":                  {ref: id("nat-"), replaceOn: []string{"SubnetId", "AllocationId"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any { return map[string]any{"NatGatewayId": r.physical} }},
	"AWS::EC2::RouteTable":                  {ref: id("rtb-"), replaceOn: []string{"VpcId"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any { return map[string]any{"RouteTableId": r.physical} }},
	"AWS::EC2::Route":                       {ref: func(x *cfnOp, r *cfnResource) string { return "rtb-route-" + computeHex(6) }, replaceOn: []string{"RouteTableId", "DestinationCidrBlock"}},
	"AWS::EC2::SubnetRouteTableAssociation": {ref: id("rtbassoc-"), replaceOn: []string{"SubnetId", "RouteTableId"}},
	"AWS::EC2::VPCEndpoint": {ref: id("vpce-"), replaceOn: []string{"ServiceName", "VpcId", "VpcEndpointType"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"Id": r.physical, "DnsEntries": []any{}, "NetworkInterfaceIds": []any{}}
	}},
	"AWS::EC2::SecurityGroup": {ref: id("sg-"), replaceOn: []string{"GroupDescription", "GroupName", "VpcId"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"GroupId": r.physical, "VpcId": propString(r.props, "VpcId")}
	}},
	"AWS::EC2::SecurityGroupIngress": {ref: id("sgr-"), replaceOn: []string{"GroupId", "IpProtocol", "FromPort", "ToPort", "CidrIp", "SourceSecurityGroupId"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any { return map[string]any{"Id": r.physical} }},
	"AWS::EC2::SecurityGroupEgress":  {ref: id("sgr-"), replaceOn: []string{"GroupId", "IpProtocol", "FromPort", "ToPort", "CidrIp", "DestinationSecurityGroupId"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any { return map[string]any{"Id": r.physical} }},
	"AWS::EC2::FlowLog":              {ref: id("fl-"), attrs: func(x *cfnOp, r *cfnResource) map[string]any { return map[string]any{"Id": r.physical} }},
	"AWS::EC2::Instance": {ref: id("i-"), attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"InstanceId": r.physical, "PrivateIp": "10.0.1.10", "PublicIp": "203.0.113.10", "PrivateDnsName": "ip-10-0-1-10.ec2.internal"}
	}},

	// Identity, secrets and keys.
	"AWS::IAM::Role": {ref: named("RoleName", 64), replaceOn: []string{"RoleName", "Path"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"Arn": "arn:aws:iam::" + x.st.home.account + ":role/" + r.physical, "RoleId": "AROA" + strings.ToUpper(computeHex(8))}
	}},
	"AWS::IAM::InstanceProfile": {ref: named("InstanceProfileName", 128), attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"Arn": "arn:aws:iam::" + x.st.home.account + ":instance-profile/" + r.physical}
	}},
	"AWS::IAM::ManagedPolicy": {ref: func(x *cfnOp, r *cfnResource) string {
		return "arn:aws:iam::" + x.st.home.account + ":policy/" + named("ManagedPolicyName", 128)(x, r)
	}, attrs: func(x *cfnOp, r *cfnResource) map[string]any { return map[string]any{"PolicyArn": r.physical} }},
	"AWS::IAM::Policy":            {ref: func(x *cfnOp, r *cfnResource) string { return physicalName(x, r, 128) }},
	"AWS::IAM::RolePolicy":        {ref: func(x *cfnOp, r *cfnResource) string { return physicalName(x, r, 128) }},
	"AWS::IAM::ServiceLinkedRole": {ref: func(x *cfnOp, r *cfnResource) string { return "AWSServiceRoleFor" + physicalName(x, r, 40) }},
	"AWS::KMS::Key": {ref: func(*cfnOp, *cfnResource) string { return uuid4() }, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"Arn": x.st.home.arn("kms", "key/"+r.physical), "KeyId": r.physical}
	}},
	"AWS::KMS::Alias":             {ref: named("AliasName", 256), replaceOn: []string{"AliasName"}},
	"AWS::SecretsManager::Secret": {ref: arnOf("secretsmanager", "secret:", func(x *cfnOp, r *cfnResource) string { return named("Name", 256)(x, r) + "-" + computeHex(3) }), attrs: func(x *cfnOp, r *cfnResource) map[string]any { return map[string]any{"Id": r.physical} }},
	"AWS::SSM::Parameter": {ref: named("Name", 1024), replaceOn: []string{"Name"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"Type": propString(r.props, "Type"), "Value": propString(r.props, "Value")}
	}},
	"AWS::CertificateManager::Certificate": {ref: arnOf("acm", "certificate/", func(*cfnOp, *cfnResource) string { return uuid4() }), replaceOn: []string{"DomainName"}},

	// Data stores.
	"AWS::RDS::DBSubnetGroup":    {ref: lower("DBSubnetGroupName", 255)},
	"AWS::RDS::DBParameterGroup": {ref: lower("DBParameterGroupName", 255)},
	"AWS::RDS::DBInstance": {ref: lower("DBInstanceIdentifier", 63), replaceOn: []string{"DBInstanceIdentifier", "Engine", "DBName", "MasterUsername", "StorageEncrypted", "KmsKeyId", "DBSubnetGroupName"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		host := r.physical + ".c" + computeHex(6) + "." + x.st.home.region + ".rds.amazonaws.com"
		return map[string]any{"Endpoint.Address": host, "Endpoint.Port": cmp.Or(propString(r.props, "Port"), "5432"), "Endpoint.HostedZoneID": "Z24O6O9L7SGTNB",
			"DBInstanceArn": x.st.home.arn("rds", "db:"+r.physical), "DbiResourceId": "db-" + strings.ToUpper(computeHex(13)),
			"MasterUserSecret.SecretArn": x.st.home.arn("secretsmanager", "secret:rds!db-"+uuid4()+"-"+computeHex(3))}
	}},
	"AWS::ElastiCache::SubnetGroup":    {ref: lower("CacheSubnetGroupName", 255)},
	"AWS::ElastiCache::ParameterGroup": {ref: lower("CacheParameterGroupName", 255)},
	"AWS::ElastiCache::ReplicationGroup": {ref: lower("ReplicationGroupId", 40), replaceOn: []string{"ReplicationGroupId", "AtRestEncryptionEnabled", "CacheSubnetGroupName", "Engine", "KmsKeyId"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		host := "master." + r.physical + "." + computeHex(3) + ".apne1.cache.amazonaws.com"
		return map[string]any{"PrimaryEndPoint.Address": host, "PrimaryEndPoint.Port": cmp.Or(propString(r.props, "Port"), "6379"),
			"ReaderEndPoint.Address": "replica." + host[len("master."):], "ReaderEndPoint.Port": cmp.Or(propString(r.props, "Port"), "6379"),
			"ConfigurationEndPoint.Address": "clustercfg." + host[len("master."):], "ConfigurationEndPoint.Port": "6379"}
	}},
	"AWS::EFS::FileSystem": {ref: id("fs-"), replaceOn: []string{"Encrypted", "KmsKeyId", "PerformanceMode"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"FileSystemId": r.physical, "Arn": x.st.home.arn("elasticfilesystem", "file-system/"+r.physical)}
	}},
	"AWS::EFS::MountTarget": {ref: id("fsmt-"), replaceOn: []string{"FileSystemId", "SubnetId"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"Id": r.physical, "IpAddress": "10.0.11.100"}
	}},
	"AWS::EFS::AccessPoint": {ref: id("fsap-"), replaceOn: []string{"FileSystemId", "PosixUser", "RootDirectory"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"AccessPointId": r.physical, "Arn": x.st.home.arn("elasticfilesystem", "access-point/"+r.physical)}
	}},
	"AWS::S3::Bucket": {ref: lower("BucketName", 63), replaceOn: []string{"BucketName"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"Arn": "arn:aws:s3:::" + r.physical, "DomainName": r.physical + ".s3.amazonaws.com",
			"RegionalDomainName": r.physical + ".s3." + x.st.home.region + ".amazonaws.com", "WebsiteURL": "http://" + r.physical + ".s3-website." + x.st.home.region + ".amazonaws.com"}
	}},
	"AWS::S3::BucketPolicy": {ref: func(x *cfnOp, r *cfnResource) string { return physicalName(x, r, 128) }},
	"AWS::CloudFront::Distribution": {ref: func(*cfnOp, *cfnResource) string { return "E" + strings.ToUpper(computeHex(7)) }, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"DomainName": "d" + computeHex(6) + ".cloudfront.net", "Id": r.physical}
	}},
	"AWS::CloudFront::OriginAccessControl": {ref: func(*cfnOp, *cfnResource) string { return "E" + strings.ToUpper(computeHex(7)) }, attrs: func(x *cfnOp, r *cfnResource) map[string]any { return map[string]any{"Id": r.physical} }},
	"AWS::CloudFront::CachePolicy":         {ref: func(*cfnOp, *cfnResource) string { return uuid4() }, attrs: func(x *cfnOp, r *cfnResource) map[string]any { return map[string]any{"Id": r.physical} }},

	// Edge protection, operations and cost.
	"AWS::WAFv2::WebACL": {ref: func(x *cfnOp, r *cfnResource) string {
		name := named("Name", 128)(x, r)
		return name + "|" + uuid4() + "|" + cmp.Or(propString(r.props, "Scope"), "REGIONAL")
	}, replaceOn: []string{"Name", "Scope"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		name, id, _ := strings.Cut(r.physical, "|")
		id, _, _ = strings.Cut(id, "|")
		return map[string]any{"Arn": x.st.home.arn("wafv2", "regional/webacl/"+name+"/"+id), "Id": id, "LabelNamespace": "awswaf:" + x.st.home.account + ":webacl:" + name + ":"}
	}},
	"AWS::WAFv2::WebACLAssociation": {ref: func(x *cfnOp, r *cfnResource) string {
		return propString(r.props, "ResourceArn") + "|" + propString(r.props, "WebACLArn")
	}, replaceOn: []string{"ResourceArn", "WebACLArn"}},
	"AWS::SNS::Topic": {ref: arnOf("sns", "", named("TopicName", 256)), replaceOn: []string{"TopicName"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"TopicArn": r.physical, "TopicName": arnName(r.physical)}
	}},
	"AWS::SNS::Subscription": {ref: func(x *cfnOp, r *cfnResource) string { return propString(r.props, "TopicArn") + ":" + uuid4() }, replaceOn: []string{"TopicArn", "Endpoint", "Protocol"}},
	"AWS::SNS::TopicPolicy":  {ref: func(x *cfnOp, r *cfnResource) string { return physicalName(x, r, 128) }},
	"AWS::CloudWatch::Alarm": {ref: named("AlarmName", 255), replaceOn: []string{"AlarmName"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"Arn": x.st.home.arn("cloudwatch", "alarm:"+r.physical)}
	}},
	"AWS::CloudWatch::CompositeAlarm": {ref: named("AlarmName", 255), replaceOn: []string{"AlarmName"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"Arn": x.st.home.arn("cloudwatch", "alarm:"+r.physical)}
	}},
	"AWS::CloudWatch::Dashboard": {ref: named("DashboardName", 255), replaceOn: []string{"DashboardName"}},
	"AWS::Budgets::Budget": {ref: func(x *cfnOp, r *cfnResource) string {
		return cmp.Or(propString(propMap(r.props, "Budget"), "BudgetName"), physicalName(x, r, 100))
	}},
	"AWS::CE::AnomalyMonitor": {ref: arnOf("ce", "anomalymonitor/", func(*cfnOp, *cfnResource) string { return uuid4() }), attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"MonitorArn": r.physical}
	}},
	"AWS::CE::AnomalySubscription": {ref: arnOf("ce", "anomalysubscription/", func(*cfnOp, *cfnResource) string { return uuid4() }), attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"SubscriptionArn": r.physical}
	}},
	"AWS::Scheduler::Schedule": {ref: named("Name", 64), replaceOn: []string{"Name", "GroupName"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"Arn": x.st.home.arn("scheduler", "schedule/"+cmp.Or(propString(r.props, "GroupName"), "default")+"/"+r.physical)}
	}},
	"AWS::Events::Rule": {ref: named("Name", 64), replaceOn: []string{"Name"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"Arn": x.st.home.arn("events", "rule/"+r.physical)}
	}},
	"AWS::AutoScaling::ScheduledAction": {ref: named("ScheduledActionName", 255), replaceOn: []string{"AutoScalingGroupName"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"ScheduledActionName": r.physical}
	}},
	"AWS::AutoScaling::LifecycleHook": {ref: named("LifecycleHookName", 255), replaceOn: []string{"AutoScalingGroupName", "LifecycleHookName"}},
	"AWS::ServiceDiscovery::PrivateDnsNamespace": {ref: id("ns-"), replaceOn: []string{"Name", "Vpc"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"Id": r.physical, "Arn": x.st.home.arn("servicediscovery", "namespace/"+r.physical), "HostedZoneId": "Z" + strings.ToUpper(computeHex(10))}
	}},
	"AWS::ECR::Repository": {ref: lower("RepositoryName", 256), replaceOn: []string{"RepositoryName"}, attrs: func(x *cfnOp, r *cfnResource) map[string]any {
		return map[string]any{"Arn": x.st.home.arn("ecr", "repository/"+r.physical), "RepositoryUri": x.st.home.account + ".dkr.ecr." + x.st.home.region + ".amazonaws.com/" + r.physical}
	}},
	"AWS::Route53::RecordSet":                  {ref: func(x *cfnOp, r *cfnResource) string { return propString(r.props, "Name") }, replaceOn: []string{"HostedZoneId", "Name", "Type"}},
	"AWS::CloudFormation::WaitConditionHandle": {ref: fixed("https://cloudformation-waitcondition.example/awssim")},
}
