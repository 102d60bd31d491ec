#!/usr/bin/perl
# dh sequence addon of dkms-rs: `dh $@ --with dkms-rs`, or Build-Depends: dh-sequence-dkms-rs.
# Runs dh_dkms-rs where Debian's dkms addon runs dh_dkms: before dh_installinit, so that its
# postinst/prerm snippets land in debian/<package>.*.debhelper before dh_installdeb reads them.
use warnings;
use strict;
use Debian::Debhelper::Dh_Lib;

insert_before("dh_installinit", "dh_dkms-rs");

1;
