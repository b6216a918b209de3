# Client examples (examples/): Python with pytest, Java with JUnit 5 and
# Jakarta Mail, Node with nodemailer. Each runs against build/smtp-emulator
# where its toolchain is available; as root, examples/run.sh installs it.
.PHONY: examples examples-python examples-java examples-node
CHECK_EXTRA += examples

examples: examples-python examples-java examples-node

examples-python examples-java examples-node: build/smtp-emulator certs
	./examples/run.sh $(@:examples-%=%)
