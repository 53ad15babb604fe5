# Code stamps: one small input per job for its script and library code (see code()).


rule code_stamp:
    input:
        stamped_code,
    output:
        f"{RESULTS}/code/{{script}}{STAMP_SUFFIX}",
    log:
        f"{RESULTS}/logs/code_stamp/{{script}}.log",
    localrule: True
    run:
        write_code_stamp(input, output[0], LIBRARY)
        Path(log[0]).write_text(f"stamped {len(input)} file(s) into {output[0]}\n")
