# Copyright (c) 2024, outbox contributors
#
# t/lib/OutboxTest/TLS.pm
#	Test certificates, made with the openssl command line tool.

=pod

=head1 NAME

OutboxTest::TLS - a throw-away PKI for TLS tests

=head1 SYNOPSIS

  use OutboxTest::TLS;
  my $pki = OutboxTest::TLS::make_pki(PostgreSQL::Test::Utils::tempdir('pki'));
  my $mq = OutboxTest::RabbitMQ->new(name => 'tls', tls => {
      cert => $pki->{server_cert}, key => $pki->{server_key},
      cacert => $pki->{ca_cert} });

=head1 DESCRIPTION

C<make_pki($dir, client_password => 'secret', bits => 2048, days => 30)>
writes, in $dir, and returns their paths in a hash:

  ca_cert, ca_key                 the test CA ("outbox test CA")
  server_cert, server_key         CN localhost, SAN DNS:localhost and
                                  IP:127.0.0.1, serverAuth, signed by the CA
  wrong_host_cert, wrong_host_key CN/SAN wrong.invalid (no IP), signed by
                                  the CA: for host name verification tests
  other_ca_cert, other_ca_key     an unrelated CA ("wrong CA" tests)
  client_cert, client_key         CN outbox-client, clientAuth, signed by the CA
  client_key_encrypted            the same key, AES-256 encrypted (PKCS#8)
  client_password                 its password (default "outbox-secret")
  other_client_cert, other_client_key  a client certificate of the other CA

Keys are mode 0600, certificates 0644, all owned by the user running the
test (the broker and PostgreSQL run as that user too).  Keys are RSA, the
most widely accepted.

=cut

package OutboxTest::TLS;

use strict;
use warnings;

use Carp;
use Cwd qw(abs_path);
use File::Path qw(make_path);
use IPC::Run;

sub make_pki
{
	my ($dir, %opt) = @_;
	croak "make_pki: a directory is required" unless defined $dir;
	make_path($dir) unless -d $dir;
	$dir = abs_path($dir);
	my $bits     = $opt{bits} // 2048;
	my $days     = $opt{days} // 30;
	my $password = $opt{client_password} // 'outbox-secret';
	my %p;

	# Two CAs, self-signed.
	for my $ca ([ 'ca', 'outbox test CA' ], [ 'other_ca', 'outbox unrelated CA' ])
	{
		my ($name, $cn) = @$ca;
		_openssl('req', '-x509', '-newkey', "rsa:$bits", '-nodes',
			'-keyout', "$dir/$name.key", '-out', "$dir/$name.crt",
			'-days', $days, '-subj', "/O=outbox tests/CN=$cn",
			'-addext', 'basicConstraints=critical,CA:TRUE',
			'-addext', 'keyUsage=critical,keyCertSign,cRLSign',
			'-addext', 'subjectKeyIdentifier=hash');
		$p{"${name}_cert"} = "$dir/$name.crt";
		$p{"${name}_key"}  = "$dir/$name.key";
	}

	# Leaf certificates, each signed by its CA.
	_leaf($dir, $bits, $days, 'server', 'ca', 'localhost',
		'subjectAltName=DNS:localhost,IP:127.0.0.1', 'serverAuth', \%p);
	_leaf($dir, $bits, $days, 'wrong_host', 'ca', 'wrong.invalid',
		'subjectAltName=DNS:wrong.invalid', 'serverAuth', \%p);
	_leaf($dir, $bits, $days, 'client', 'ca', 'outbox-client',
		undef, 'clientAuth', \%p);
	_leaf($dir, $bits, $days, 'other_client', 'other_ca', 'outbox-client',
		undef, 'clientAuth', \%p);

	# The client key again, encrypted with a password.
	_openssl('pkey', '-in', "$dir/client.key", '-aes256',
		'-passout', "pass:$password", '-out', "$dir/client_encrypted.key");
	$p{client_key_encrypted} = "$dir/client_encrypted.key";
	$p{client_password}      = $password;

	for my $k (keys %p)
	{
		next if $k eq 'client_password';
		chmod($k =~ /_key/ ? 0600 : 0644, $p{$k});
	}
	$p{dir} = $dir;
	return \%p;
}

# One key and certificate signed by the CA $ca.
sub _leaf
{
	my ($dir, $bits, $days, $name, $ca, $cn, $san, $eku, $p) = @_;
	my $ext = "$dir/$name.ext";
	open(my $fh, '>', $ext) or croak "cannot write $ext: $!";
	print $fh "basicConstraints=critical,CA:FALSE\n",
	  "keyUsage=critical,digitalSignature,keyEncipherment\n",
	  "extendedKeyUsage=$eku\n",
	  "authorityKeyIdentifier=keyid\n";
	print $fh "$san\n" if $san;
	close $fh;

	_openssl('req', '-new', '-newkey', "rsa:$bits", '-nodes',
		'-keyout', "$dir/$name.key", '-out', "$dir/$name.csr",
		'-subj', "/O=outbox tests/CN=$cn");
	_openssl('x509', '-req', '-in', "$dir/$name.csr",
		'-CA', "$dir/$ca.crt", '-CAkey', "$dir/$ca.key",
		'-set_serial', '0x' . join('', map { sprintf '%02x', int rand 256 } 1 .. 12),
		'-days', $days, '-extfile', $ext, '-out', "$dir/$name.crt");
	unlink "$dir/$name.csr", $ext;
	$p->{"${name}_cert"} = "$dir/$name.crt";
	$p->{"${name}_key"}  = "$dir/$name.key";
	return;
}

sub _openssl
{
	my @args = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'openssl', @args ], '<', \undef, '>', \$out, '2>', \$err)
	  or croak "openssl @args failed: $out$err";
	return $out;
}

1;
