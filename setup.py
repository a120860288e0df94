"""Packaging for resm: every field comes from settings.ini, the single nbdev config."""
from configparser import ConfigParser
from setuptools import find_packages, setup

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
c = cfg['DEFAULT']
setup(
    name=c['lib_name'], version=c['version'], description=c['description'],
    author=c['author'], author_email=c['author_email'], license='MIT',
    packages=find_packages(include=['resm', 'resm.*']), include_package_data=True,
    python_requires='>=' + c['min_python'],
    install_requires=c['requirements'].split(),
    extras_require={'dev': c['dev_requirements'].split(), 'hf': c['hf_requirements'].split()},
    entry_points={'console_scripts': c['console_scripts'].split(),
                  'nbdev': [f"{c['lib_name']}={c['lib_name']}._modidx:d"]},
    zip_safe=False,
)
