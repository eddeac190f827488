//! S3 driver behaviour beyond the shared suite, against moto.
