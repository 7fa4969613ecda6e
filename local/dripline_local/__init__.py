"""The local stack: Dripline's unchanged handlers on an in-process AWS emulator (moto).

Never deployed. Also the test harness: tests create their tables with `resources`,
exactly as the local stack does, from infra/template.yaml.
"""
